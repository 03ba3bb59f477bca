"""A widget renders in the Notebook 7 interface too (served by the same Jupyter server at /notebooks/...)."""

from __future__ import annotations

from textwrap import dedent

import pytest

pytestmark = pytest.mark.browser

CELLS = [
    dedent("""\
        import torch
        import interpwidgets as iw
        pattern = torch.tril(torch.rand(3, 6, 6))
        pattern = pattern / pattern.sum(-1, keepdim=True)
        iw.widgets.AttentionPatterns(pattern=pattern, tokens=["<bos>", "The", " cat", " sat", " on", " mat"], head=1)"""),
]


def test_attention_patterns_render_in_notebook7(notebook_page, jupyter_server, screenshot):
    notebook = notebook_page("notebook7", CELLS, ui="notebook")
    page = notebook.page
    tree = page.context.new_page()  # Notebook 7's file browser lists it
    tree.goto(f"{jupyter_server.url}/tree")
    tree.get_by_text("notebook7.ipynb").first.wait_for()
    tree.close()
    assert "/notebooks/notebook7.ipynb" in page.url
    root = page.locator(".iw-attention")
    root.locator(".iw-caption", has_text="L0H1:").wait_for()
    root.locator("xpath=self::*[@data-iw-status='idle']").wait_for()
    assert root.locator(".iw-head").count() == 3
    assert root.locator(".iw-row-labels > span").all_inner_texts() == ["<bos>", "The", " cat", " sat", " on", " mat"]
    screenshot(root, "notebook7_attention")
