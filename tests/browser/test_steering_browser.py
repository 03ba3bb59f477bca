"""Steering in JupyterLab: the kernel's generations without and with steering side by side; moving a slider
regenerates (debounced, coalesced) and shows the kernel's steered text with changed tokens marked; hover
shows what the other side wrote; sliders are added and removed in the kernel; seeded sampling; a setting out of
the kernel's limits is refused there and put back."""

from __future__ import annotations

from textwrap import dedent

import pytest
from harness import jupyter_theme, wait_idle

pytestmark = pytest.mark.browser

PROMPT = "When Mary and John went to the store,"
HOOK = "blocks.1.hook_resid_post"

CELLS = [
    dedent("""\
        import json
        from interpwidgets.models import build_teaching_model
        from interpwidgets.sae import SAEConfig, build_sae
        from interpwidgets.widgets.steering import Steering
        model = build_teaching_model(seed=0)
        sae = build_sae(SAEConfig(d_in=128, d_sae=64, architecture="relu", hook_name="blocks.1.hook_resid_post"), seed=0)"""),
    f"steering = Steering(model, sae, {PROMPT!r}, features=[5, 9], max_new_tokens=8)\nsteering",
    # the kernel's own generations for the settings the test chooses
    dedent("""\
        limit = steering.rows[0]["limit"]
        def run(scales, **settings):
            baseline, steered = steering.continuations(scales, max_new_tokens=8, **settings)
            return {"baseline": baseline, "steered": steered}
        expected = {"limit": limit, "zero": run([0.0, 0.0]), "max": run([limit, 0.0]),
                    "half": run([-limit / 2, 0.0]),
                    "sampled": run([limit, 0.0], sampling="sample", temperature=1.0, seed=3),
                    "n_prompt": len(steering.tokens)}
        print("IW-EXPECTED", json.dumps(expected))"""),
]


@pytest.fixture(scope="module")
def shown(widget_page):
    return widget_page("steering", CELLS, ".iw-steering",
                       ready=lambda root: root.locator(".iw-description", has_text="no steering").wait_for())


@pytest.fixture(scope="module")
def root(shown):
    return shown.root


@pytest.fixture(scope="module")
def expected(shown) -> dict:
    return shown.expected


def generated(root, side: str) -> list[str]:
    return root.locator(f".iw-{side} .iw-new").evaluate_all("els => els.map(e => e.textContent)")


def set_slider(root, index: int, value: str) -> None:
    root.locator(f".iw-slider[data-index='{index}']").evaluate(
        f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}")


def test_renders_sliders_and_both_generations(root, expected, screenshot):
    assert root.locator(".iw-row-label").all_inner_texts() == [f"{HOOK} #5", f"{HOOK} #9"]
    slider = root.locator(".iw-slider[data-index='0']")
    assert (slider.get_attribute("min"), slider.get_attribute("max"), slider.get_attribute("step")) == ("-200", "200", "1")
    assert generated(root, "baseline") == generated(root, "steered") == expected["zero"]["baseline"]
    assert root.locator(".iw-baseline .iw-prompt-tokens .iw-token").count() == expected["n_prompt"]


def test_moving_a_slider_regenerates_in_the_kernel(root, expected, screenshot):
    for value in ("el.max / 4", "el.max / 3", "el.max / 2", "el.max"):  # a burst: only the latest settings matter
        set_slider(root, 0, value)
    root.locator(".iw-description", has_text=f"{HOOK} #5 \u00d7").wait_for()
    root.locator(".iw-description", has_text=f"\u00d7 {expected['limit']:g}").wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["max"]["steered"]
    assert generated(root, "baseline") == expected["max"]["baseline"]
    changed = [i for i, (a, b) in enumerate(zip(expected["max"]["baseline"], expected["max"]["steered"])) if a != b]
    marked = root.locator(".iw-steered .iw-new").evaluate_all("els => els.map(e => e.classList.contains('iw-diff'))")
    assert [i for i, on in enumerate(marked) if on] == changed and changed
    screenshot(root, "steering")


def test_hover_shows_the_other_sides_token(root, expected):
    first = next(i for i, (a, b) in enumerate(zip(expected["max"]["baseline"], expected["max"]["steered"])) if a != b)
    root.locator(".iw-steered .iw-new").nth(first).hover()
    tooltip = root.locator(".iw-tooltip")
    tooltip.wait_for(state="visible")
    assert f"without steering: {expected['n_prompt'] + first} \u2018{expected['max']['baseline'][first]}\u2019" in tooltip.inner_text()


def test_reset_and_negative_scales(root, expected):
    set_slider(root, 0, "-el.max / 2")
    root.locator(".iw-description", has_text=f"\u00d7 {-expected['limit'] / 2:g}").wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["half"]["steered"]
    root.locator(".iw-reset").first.click()
    root.locator(".iw-description", has_text="no steering").wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["zero"]["steered"]


def test_seeded_sampling(root, expected):
    set_slider(root, 0, "el.max")
    root.locator("select[aria-label='sampling']").select_option("sample")
    root.locator("input[aria-label='seed']").evaluate("el => { el.value = '3'; el.dispatchEvent(new Event('change')); }")
    root.locator(".iw-description", has_text="sampled at T=1, seed 3").wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["sampled"]["steered"]
    assert generated(root, "baseline") == expected["sampled"]["baseline"]


def test_sliders_are_added_and_removed_in_the_kernel(root):
    root.locator("input[aria-label='feature to add']").fill("12")
    root.locator(".iw-add").click()
    root.locator(".iw-row-label", has_text=f"{HOOK} #12").wait_for()
    assert root.locator(".iw-slider").count() == 3
    root.locator(".iw-add").click()  # the same feature again: the kernel refuses
    root.locator(".iw-error", has_text="already has a slider").wait_for()
    root.locator(".iw-remove").nth(1).click()
    root.locator(".iw-row-label", has_text=f"{HOOK} #9").wait_for(state="detached")
    assert root.locator(".iw-row-label").all_inner_texts() == [f"{HOOK} #5", f"{HOOK} #12"]


def test_a_setting_outside_the_kernels_limits_is_refused_and_put_back(root):
    new_tokens = root.locator("input[aria-label='new tokens']")
    assert (new_tokens.get_attribute("min"), new_tokens.get_attribute("max")) == ("1", "64")  # the limits trait
    new_tokens.evaluate("el => { el.value = '500'; el.dispatchEvent(new Event('change')); }")
    root.locator(".iw-error", has_text="max_new_tokens must be between 1 and 64").wait_for()
    root.page.wait_for_function("el => el.value === '8'", arg=new_tokens.element_handle())
    wait_idle(root)


# ---- #16: a centred slider reads 0, changed tokens are readable in both themes, an explicit generate button
def test_a_slider_stepped_to_its_centre_reads_zero_and_steers_nothing(root, expected):
    """Stepped up from its min by half its range, the slider sits at position 0 and reads exactly 0 (a decimal step
    carried float error: "2.00e-15")."""
    root.locator("select[aria-label='sampling']").select_option("greedy")
    slider = root.locator(".iw-slider[data-index='0']")
    slider.evaluate("el => { el.value = el.min; el.stepUp(Number(el.max) / Number(el.step)); "
                    "el.dispatchEvent(new Event('input')); }")
    assert root.locator(".iw-scale-value").first.inner_text() == "0"
    root.locator(".iw-description", has_text="no steering").wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["zero"]["steered"]


CONTRAST = """root => {
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const rgb = (css) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = css; ctx.fillRect(0, 0, 1, 1);
                           return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); };
    const lum = (c) => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                         return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
    return Array.from(root.querySelectorAll('.iw-steered .iw-diff'), el => {
        const style = getComputedStyle(el);
        const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
}"""


def test_changed_tokens_meet_a_contrast_of_4_5_in_light_and_dark(shown, root, expected, screenshot):
    set_slider(root, 0, "el.max")
    root.locator(".iw-description", has_text=f"\u00d7 {expected['limit']:g} \u00b7 greedy").wait_for()
    wait_idle(root)
    page = shown.notebook.page
    for name in ("steering", "steering_dark"):
        with jupyter_theme(page, dark=name.endswith("_dark")):
            page.wait_for_timeout(500)
            ratios = root.evaluate(CONTRAST)
            assert ratios and min(ratios) >= 4.5, (name, ratios)
            screenshot(root, name)


def test_the_generate_button_asks_the_kernel_now(root, expected):
    root.locator(".iw-code-slot > *").first.evaluate("el => { el.dataset.old = '1'; }")
    root.locator(".iw-generate").click()
    root.locator(".iw-code-slot > *:not([data-old])").first.wait_for()
    wait_idle(root)
    assert generated(root, "steered") == expected["max"]["steered"]
