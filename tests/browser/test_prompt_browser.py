"""The prompt box and AttentionPatterns' text view in JupyterLab (issue 16): a prompt typed in a view and Enter draw
the kernel's new tokens (AttentionPatterns, LogitLens, TokenFeatures and Steering), an empty prompt is answered with a message in the
widget, keys typed in the box never reach the notebook's shortcuts, words spelled byte by byte get a warning line; hovering
the last token of a long prompt mid-screen leaves the page still (no DOM churn, no scrolling), a 241-token prompt
wraps with nothing clipped, the tooltip never outlives the view it described, and tiny weights read as numbers."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest
from playwright.sync_api import expect
from harness import jupyter_theme, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store, John gave a drink to"
NEW = "When John and Mary went to the park, Mary gave a book to"
LONG = "When Mary and John went to the store, John gave a drink to Mary. " * 15  # 241 tokens and the BOS
UNKNOWN = "xyzzy Mary went to the Quantum store"  # two words outside the vocabulary, spelled byte by byte
FILLER = "print('\\n'.join(f'line {i}' for i in range(40)))"  # room above and below, so a widget sits mid-screen

CELLS = [
    dedent("""\
        import json, torch
        import interpwidgets as iw
        model = iw.load_model(device="cpu")  # the bundled, trained teaching model"""),
    FILLER,
    f"patterns = iw.widgets.AttentionPatterns(model, {PROMPT!r}, view='text')\npatterns",
    FILLER,
    f"long = iw.widgets.AttentionPatterns(model, {LONG!r}, view='text')\nlong",
    FILLER,
    f"lens = iw.widgets.LogitLens(model, {PROMPT!r}, k=5)\nlens",
    f"unknown = iw.widgets.AttentionPatterns(model, {UNKNOWN!r})\nunknown",
    dedent("""\
        # token 2 attends 0.99968 to itself, 3.2e-4 to token 1 and 0 to token 0
        tiny_pattern = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 3.2e-4, 1 - 3.2e-4]]])
        tiny = iw.widgets.AttentionPatterns(pattern=tiny_pattern, tokens=["a", " b", " c"], view="text")
        tiny"""),
    FILLER,
    dedent(f"""\
        expected = {{"new": model.to_str_tokens({NEW!r}), "long": len(model.to_str_tokens({LONG!r}))}}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("prompt_box", CELLS, ".iw-attention", ready=lambda root: root.locator(".iw-text .iw-token").first.wait_for())


@pytest.fixture(scope="module")
def page(shown):
    return shown.notebook.page


# of the AttentionPatterns views, in notebook order (the first shows 15 before and after); UNKNOWN is the BOS and
# 18 tokens, 12 of them bytes (counted by hand below)
N_TOKENS = (15, 242, 19, 3)


def view(page, index: int, selector: str = ".iw-attention"):
    """The index-th view, found by its title's token count (the notebook may render its cells lazily)."""
    if selector == ".iw-attention":
        title = page.locator(".iw-title").filter(has_text=re.compile(rf"\u00b7 {N_TOKENS[index]} tokens$"))
        root = page.locator(selector).filter(has=title)
    else:
        root = page.locator(selector).nth(index)
    root.scroll_into_view_if_needed()
    return root


def centre(root) -> None:
    """Scrolls the notebook so the widget is in the middle of the screen, as the issue's reader had it."""
    root.evaluate("el => el.scrollIntoView({block: 'center'})")
    root.page.wait_for_timeout(300)


def test_a_typed_prompt_and_enter_draw_the_kernels_new_tokens(page, shown, screenshot):
    root = view(page, 0)
    box = root.get_by_label("prompt", exact=True)
    assert box.input_value() == PROMPT
    box.fill(NEW)
    box.press("Enter")
    root.locator(".iw-title", has_text=f"{len(shown.expected['new'])} tokens").wait_for()
    root.locator(".iw-text .iw-token").first.wait_for()
    wait_idle(root)
    drawn = root.locator(".iw-text .iw-token").all_inner_texts()
    assert drawn == [t.replace("\n", "\u21b5") for t in shown.expected["new"]]
    assert root.get_by_label("prompt", exact=True).input_value() == NEW
    assert "attention_patterns(model, " in root.locator(".iw-prompt .iw-code-text").inner_text()
    screenshot(root, "prompt_box_new_prompt")


def test_an_empty_prompt_is_answered_with_a_message(page, screenshot):
    root = view(page, 0)
    before = root.locator(".iw-text .iw-token").count()
    box = root.get_by_label("prompt", exact=True)
    box.fill("")
    root.locator(".iw-prompt-run").click()
    root.locator(".iw-error", has_text="the prompt is empty: type some text").wait_for()
    assert root.locator(".iw-text .iw-token").count() == before  # the view stays as it was
    assert not box.is_disabled()
    screenshot(root, "prompt_box_empty")
    box.fill(NEW)


def test_keys_typed_in_the_box_stay_out_of_the_notebook(page):
    """'a' and 'b' in command mode insert a cell, 'dd' deletes one: typed in the box they only edit the prompt."""
    root = view(page, 0)
    cells = page.locator(".jp-Notebook .jp-Cell")
    count = cells.count()
    root.locator(".iw-title").click()  # focus leaves the cell editors: the notebook is in command mode
    page.wait_for_function("() => document.querySelector('.jp-Notebook').classList.contains('jp-mod-commandMode')")
    box = root.get_by_label("prompt", exact=True)
    box.click()
    box.fill("")
    box.press_sequentially("a bad dd")
    page.wait_for_timeout(300)
    assert cells.count() == count
    assert box.input_value() == "a bad dd"
    box.fill(NEW)


def test_words_outside_the_vocabulary_get_a_warning_line(page, shown, screenshot):
    """'xyzzy' (5 letters) and ' Quantum' (a space and 7 letters, of which 'a' is the vocabulary's word "a") are
    spelled byte by byte: 5 + 7 = 12 of the 18 tokens after the BOS (counted by hand), most of the prompt, which the
    line says."""
    root = view(page, 2)
    warning = root.locator(".iw-prompt-warning", has_text="outside the model's")
    # retried until it holds: the line is redrawn when the kernel's answer arrives, so a single read can see it empty
    expect(warning).to_have_text(
        "most of the prompt is outside the model's training distribution: 12 of 18 tokens spell words outside the "
        "model's vocabulary, byte by byte: 'xyzzy', 'Quantum'", use_inner_text=True)
    screenshot(root, "prompt_box_unknown_warning")


def test_the_lens_takes_a_typed_prompt(page, shown, screenshot):
    root = view(page, 0, ".iw-lens")
    root.locator(".iw-matrix canvas").wait_for()
    box = root.get_by_label("prompt", exact=True)
    assert box.input_value() == PROMPT
    box.fill(NEW)
    box.press("Enter")
    n = len(shown.expected["new"])
    root.locator(".iw-title", has_text=f"{n} tokens").wait_for()
    root.locator(".iw-matrix canvas").wait_for()
    wait_idle(root)
    labels = root.locator(".iw-col-labels > span").all_inner_texts()
    assert labels == [t.replace("\n", "\u21b5") for t in shown.expected["new"]]
    screenshot(root, "prompt_box_lens")


WATCH = """(root) => {
  window.__iwMutations = 0;
  window.__iwTops = [];
  const observer = new MutationObserver((records) => { window.__iwMutations += records.length; });
  observer.observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
  window.__iwStop = () => observer.disconnect();
  const sample = () => { window.__iwTops.push(Math.round(root.getBoundingClientRect().top)); };
  window.__iwTimer = setInterval(sample, 50);
}"""
STOP = "() => { window.__iwStop(); clearInterval(window.__iwTimer); return [window.__iwMutations, window.__iwTops]; }"


PUT_TOP_ABOVE_VIEW = """(el) => {
  let scroller = el.parentElement;
  while (scroller && !(scroller.scrollHeight > scroller.clientHeight && /auto|scroll/.test(getComputedStyle(scroller).overflowY))) {
    scroller = scroller.parentElement;
  }
  scroller.scrollTop += el.getBoundingClientRect().top - scroller.getBoundingClientRect().top + 40;
}"""


@pytest.mark.parametrize("index", [0, 1], ids=["short", "long"])
def test_hovering_the_last_token_leaves_the_page_still(page, index):
    """Before: the notebook scrolled back and forth (574 <-> 602 px) with ~2,600 DOM changes a second while the
    pointer rested on the last token: hovering added the 28 px legend and leaving removed it, and the page moved the
    token away from the pointer and back. Now the widget keeps its height (measured before the fix: 205 -> 233 px)."""
    root = view(page, index)
    tokens = root.locator(".iw-text .iw-token")
    tokens.first.wait_for()
    page.mouse.move(2, 2)
    root.evaluate(PUT_TOP_ABOVE_VIEW)
    page.wait_for_timeout(300)
    height = root.bounding_box()["height"]
    box = tokens.last.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    root.locator(".iw-tooltip").wait_for(state="visible")
    page.wait_for_timeout(300)  # the first hover draws; what follows must be quiet
    root.evaluate(WATCH)
    page.wait_for_timeout(1500)
    mutations, tops = page.evaluate(STOP)
    hovered = root.bounding_box()["height"]
    page.mouse.move(2, 2)
    assert hovered == pytest.approx(height, abs=0.5), "hovering a token changed the widget's height"
    assert mutations < 20, f"{mutations} DOM changes in 1.5 s of a still pointer"
    assert max(tops) - min(tops) <= 1, f"the widget moved on the page: {sorted(set(tops))}"


def test_a_long_prompt_wraps_and_nothing_is_clipped(page, shown, screenshot):
    """Before: a 241-token prompt was one line, clipped after about 60 characters."""
    root = view(page, 1)
    text = root.locator(".iw-text")
    tokens = text.locator(".iw-token")
    assert tokens.count() == shown.expected["long"]
    geometry = text.evaluate("""(el) => {
      const box = el.getBoundingClientRect();
      const spans = [...el.querySelectorAll('.iw-token')].map((s) => s.getBoundingClientRect());
      const lineHeight = spans[0].height;
      return {height: box.height, lineHeight, scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
              outside: spans.filter((s) => s.right > box.right + 1 || s.left < box.left - 1).length,
              lines: new Set(spans.map((s) => Math.round(s.top))).size};
    }""")
    assert geometry["lines"] >= 10 and geometry["height"] >= 10 * geometry["lineHeight"], geometry
    assert geometry["scrollWidth"] <= geometry["clientWidth"] and geometry["outside"] == 0, geometry
    centre(root)
    screenshot(root, "attention_text_long")


def test_the_tooltip_hides_when_the_view_changes_under_the_mouse(page):
    root = view(page, 0)
    token = root.locator(".iw-text .iw-token").nth(3)
    token.hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    # the view changes without the pointer moving (as a linked widget or the kernel would change it)
    root.get_by_label("view").select_option("matrix")
    root.locator(".iw-matrix canvas").wait_for()
    assert tooltip.is_hidden()
    root.get_by_label("view").select_option("text")
    root.locator(".iw-text .iw-token").first.wait_for()
    token = root.locator(".iw-text .iw-token").nth(3)
    token.hover()
    tooltip.wait_for(state="visible")
    page.mouse.move(2, 2)  # out of the widget
    tooltip.wait_for(state="hidden")


def test_tiny_weights_read_as_numbers_and_zero_keys_are_not_listed(page, screenshot):
    """Before: 3.2e-4 read "0" and the top 3 listed keys of weight 0."""
    root = view(page, 3)
    tokens = root.locator(".iw-text .iw-token")
    tokens.first.wait_for()
    wait_idle(root)
    tokens.nth(2).hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    lines = tooltip.inner_text().splitlines()
    assert lines[0].startswith("2 \u2018 c\u2019 attends to:")
    assert len(lines) == 3, lines  # itself and ' b'; 'a' (weight 0) is not listed
    assert "1 \u2018 b\u2019" in lines[2] and re.search(r"3\.20?e\u2212?-?4", lines[2]), lines
    screenshot(root, "attention_tiny_weights")
    tokens.nth(0).hover()
    root.locator(".iw-tooltip", has_text="0 \u2018a\u2019 attends to:").wait_for()
    assert len(root.locator(".iw-tooltip").inner_text().splitlines()) == 2


def test_the_prompt_box_and_warning_read_in_the_dark_theme(page, screenshot):
    root = view(page, 2)
    with jupyter_theme(page, dark=True):
        colour = root.get_by_label("prompt", exact=True).evaluate("el => getComputedStyle(el).backgroundColor")
        assert sum(int(c) for c in re.findall(r"\d+", colour)[:3]) < 200  # the box follows the theme
        screenshot(root, "prompt_box_dark")


# ---- the SAE views: the bundled teaching model and its pretrained SAEs (what the docs' screenshots show)
SAE_HOOK = "blocks.2.hook_resid_post"
STEER_PROMPT, STEER_NEW = "When Mary and John went to the store,", "When John and Mary went to the park,"
N_NEW = 8
EXPLORER_NEW = "When Mary and John went to the market, John gave a drink and a book to"
SAE_CELLS = [
    dedent(f"""\
        import json, torch
        import interpwidgets as iw
        model = iw.load_model(device="cpu")
        saes = iw.sae.pretrained(model)
        acts = iw.sae.feature_activations(model, saes[{SAE_HOOK!r}], {PROMPT!r}).acts[1:]
        sparse = (acts > 0).float().mean(0) <= 0.5  # the strongest feature at the last token of those that are not dense
        FEATURE = int(torch.where(sparse, acts[-1], -1.0).argmax())"""),
    f"tf = iw.widgets.TokenFeatures(model, saes, {PROMPT!r}, hook={SAE_HOOK!r}, feature=FEATURE)\ntf",
    f"steering = iw.widgets.Steering(model, saes, {STEER_PROMPT!r}, features=[({SAE_HOOK!r}, FEATURE)], "
    f"max_new_tokens={N_NEW})\nsteering",
    f"explorer = iw.widgets.Explorer(model, saes, {PROMPT!r}, hook={SAE_HOOK!r}, feature=FEATURE, "
    f"corpus=torch.zeros(2, 8, dtype=torch.long))\nexplorer",
    dedent(f"""\
        sequence, greedy = model.to_tokens({STEER_NEW!r}), []  # by hand: greedy decoding of the new prompt
        with torch.no_grad():
            for _ in range({N_NEW}):
                greedy.append(int(model(sequence)[0, -1].argmax()))
                sequence = torch.cat([sequence, sequence.new_tensor([[greedy[-1]]])], dim=1)
        expected = {{"new": model.to_str_tokens({NEW!r}), "steer_new": model.to_str_tokens({STEER_NEW!r}),
                    "greedy": [model.tokenizer.decode([i]) for i in greedy],
                    "explorer_new": model.to_str_tokens({EXPLORER_NEW!r})}}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def sae_shown(widget_page):
    def ready(root):
        root.locator(".iw-caption", has_text=re.compile(r"\u00b7 max")).wait_for()
    return widget_page("prompt_box_sae", SAE_CELLS, ".iw-token-features", ready=ready)


def shown_tokens(locator) -> list[str]:
    return locator.evaluate_all("els => els.map(e => e.textContent)")


def as_drawn(tokens: list[str]) -> list[str]:
    return [t.replace("\n", "\u21b5") for t in tokens]


def in_dark_theme(page, root, screenshot, name: str) -> None:
    with jupyter_theme(page, dark=True):
        page.wait_for_timeout(500)
        screenshot(root, name)


def test_token_features_takes_a_typed_prompt(sae_shown, screenshot):
    page, expected = sae_shown.notebook.page, sae_shown.expected
    root = page.locator(".iw-token-features").first
    root.scroll_into_view_if_needed()
    box = root.get_by_label("prompt", exact=True)
    assert box.input_value() == PROMPT
    box.fill(NEW)
    box.press("Enter")
    root.locator(".iw-title", has_text=f"{len(expected['new'])} tokens").wait_for()
    root.locator(".iw-caption", has_text=re.compile(r"\u00b7 max|not active")).wait_for()
    wait_idle(root)
    assert shown_tokens(root.locator(".iw-text .iw-token")) == as_drawn(expected["new"])
    assert root.get_by_label("prompt", exact=True).input_value() == NEW
    assert "iw.sae.feature_activations(model, saes, " in root.locator(".iw-prompt .iw-code-text").inner_text()
    root.locator(".iw-apply").click()  # the view works on the new prompt: predictions after ablating at its last token
    root.locator(".iw-outcome-title").wait_for()
    wait_idle(root)
    page.mouse.move(0, 0)
    screenshot(root, "token_features_prompt")
    in_dark_theme(page, root, screenshot, "token_features_prompt_dark")


def test_steering_takes_a_typed_prompt_and_generates_from_it(sae_shown, screenshot):
    page, expected = sae_shown.notebook.page, sae_shown.expected
    root = page.locator(".iw-steering").first
    root.scroll_into_view_if_needed()
    root.locator(".iw-description", has_text="no steering").wait_for()
    wait_idle(root)
    box = root.get_by_label("prompt", exact=True)
    assert box.input_value() == STEER_PROMPT
    box.fill(STEER_NEW)
    box.press("Enter")
    root.locator(".iw-prompt .iw-code-text").wait_for()
    root.locator(".iw-description", has_text="no steering").wait_for()
    wait_idle(root)
    prompt = shown_tokens(root.locator(".iw-baseline .iw-prompt-tokens .iw-token"))
    assert prompt == as_drawn(expected["steer_new"])
    assert shown_tokens(root.locator(".iw-baseline .iw-new")) == as_drawn(expected["greedy"])
    assert f"model.to_tokens({STEER_NEW!r})" in root.locator(".iw-prompt .iw-code-text").inner_text()
    slider = root.locator(".iw-slider[data-index='0']")  # steer, as the docs' picture shows it
    slider.evaluate("el => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
    root.locator(".iw-description", has_text="\u00d7").wait_for()
    wait_idle(root)
    assert shown_tokens(root.locator(".iw-baseline .iw-prompt-tokens .iw-token")) == prompt
    page.mouse.move(0, 0)
    screenshot(root, "steering_prompt")
    in_dark_theme(page, root, screenshot, "steering_prompt_dark")


def test_the_explorers_one_box_reprompts_its_token_and_attention_views(sae_shown):
    page, expected = sae_shown.notebook.page, sae_shown.expected
    tf, attention = page.locator(".iw-token-features").nth(1), page.locator(".iw-attention").first
    attention.scroll_into_view_if_needed()
    attention.locator(".iw-caption", has_text="L0H0:").wait_for()
    assert attention.locator(".iw-prompt-input").count() == 0  # one box: the token view's
    tf.scroll_into_view_if_needed()
    box = tf.get_by_label("prompt", exact=True)
    box.fill(EXPLORER_NEW)
    box.press("Enter")
    n = len(expected["explorer_new"])
    tf.locator(".iw-title", has_text=f"{n} tokens").wait_for()
    attention.locator(".iw-title", has_text=re.compile(rf"\u00b7 {n} tokens$")).wait_for()
    wait_idle(tf)
    assert shown_tokens(tf.locator(".iw-text .iw-token")) == as_drawn(expected["explorer_new"])
    attention.get_by_label("view").select_option("text")
    attention.locator(".iw-text .iw-token").first.wait_for()
    wait_idle(attention)
    assert attention.locator(".iw-text .iw-token").all_inner_texts() == as_drawn(expected["explorer_new"])
