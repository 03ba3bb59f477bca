"""A notebook with widgets, saved without widget state (JupyterLab's default) and exported to HTML or shown by a
viewer, still shows their pictures: the static text/html preview in each widget's mime bundle."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

CELL = """\
import torch
import interpwidgets as iw
pattern = torch.tril(torch.ones(2, 3, 3))
iw.widgets.AttentionPatterns(pattern=pattern / pattern.sum(-1, keepdim=True), tokens=["<b>x</b>", " y", " z"])"""


@pytest.mark.slow
def test_exported_html_shows_the_static_preview():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=False).execute()
    data = notebook.cells[0].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data and "text/html" in data
    html, _ = HTMLExporter().from_notebook_node(notebook)
    assert 'class="iw-static"' in html
    assert "data:image/png;base64," in html
    assert "0:&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "<script src=" not in html.split('class="iw-static"', 1)[1].split("</div></div>", 1)[0]
