"""The notebook extension in JupyterLab: after `%load_ext interpwidgets`, a magic, a bare result and an SAE as the
values of cells show as live widgets and cards, a bad magic argument shows a message (no traceback), and
`%%iw prompts` lays out one view per prompt."""

from __future__ import annotations

from textwrap import dedent

import pytest
from harness import texts, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"

CELLS = [
    "%load_ext interpwidgets",
    dedent("""\
        import interpwidgets as iw
        model = iw.load_model()
        task = iw.tasks.ioi(model, n=4)"""),
    f'%iw attention "{PROMPT}" --layer 1 --head 2',
    'iw.patching.activation_patch(model, task, site="z", progress=False)',
    "%iw patch iio --site z",
    'iw.sae.pretrained(model)["blocks.2.hook_resid_post"]',
    "%%iw prompts\nWhen Mary and John went to the store\nThe cat sat on the mat",
]


def cell(page, index: int):
    return page.locator(".jp-CodeCell").nth(index)


@pytest.fixture(scope="module")
def page(notebook_page):
    notebook = notebook_page("extension", CELLS)
    cell(notebook.page, len(CELLS) - 1).locator(".iw-attention").nth(1).wait_for()
    return notebook.page


def test_a_magic_shows_its_widget(page, screenshot):
    """%iw attention draws the attention widget, opened on the head the command named."""
    root = cell(page, 2).locator(".iw-attention")
    wait_idle(root)
    assert "L1H2" in root.inner_text()
    screenshot(cell(page, 2), "extension_magic_attention")


def test_a_bare_result_shows_as_its_heatmap(page):
    """A PatchResult as the cell's value is a live PatchHeatmap (the widget, not the static preview)."""
    root = cell(page, 3).locator(".iw-patch")
    wait_idle(root)
    assert "Activation patching" in root.inner_text()
    assert cell(page, 3).locator(".iw-static").count() == 0


def test_a_bad_magic_argument_shows_a_message_without_a_traceback(page, screenshot):
    """The message names the mistake and the right form; nothing in the output is a traceback."""
    output = cell(page, 4).locator(".jp-OutputArea-output")
    message = output.locator(".iw-message")
    message.wait_for()
    text = message.inner_text()
    assert "unknown task 'iio' (did you mean ioi?)" in text and "usage: %iw patch TASK" in text
    assert "Traceback" not in output.inner_text() and cell(page, 4).locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    screenshot(cell(page, 4), "extension_magic_message")


def test_an_sae_shows_as_its_card(page):
    """The SAE's card reads its architecture, hook, width and k."""
    card = cell(page, 5).locator(".iw-card")
    card.wait_for()
    text = card.inner_text()
    assert "batchtopk SAE" in text and "blocks.2.hook_resid_post" in text and "1,024" in text


def test_the_prompts_cell_magic_shows_one_view_per_prompt_side_by_side(page, screenshot):
    """Two prompts, two attention widgets in one output, each titled with its own token count."""
    views = cell(page, 6).locator(".iw-attention")
    assert views.count() == 2
    titles = texts(cell(page, 6).locator(".iw-title"))
    assert len(titles) == 2 and titles[0] != titles[1]
    first, second = (views.nth(i).bounding_box() for i in range(2))
    assert second["x"] > first["x"] + first["width"] / 2 or second["y"] >= first["y"] + first["height"]
    screenshot(cell(page, 6), "extension_prompts")
