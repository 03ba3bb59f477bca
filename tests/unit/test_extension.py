"""The IPython extension in a real IPython shell: results display as their views, the %iw magics run their engine
function or answer a bad argument with a message (never a traceback), and unloading takes it all back."""

from __future__ import annotations

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell

import interpwidgets as iw
from interpwidgets.widgets import display, magics
from interpwidgets.widgets.extension import InterpMagics

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def shell(teaching_model):
    """An IPython shell with the extension loaded and the teaching model as the notebook variable `model`."""
    ip = InteractiveShell.instance()
    ip.user_ns["model"] = teaching_model
    ip.run_line_magic("load_ext", "interpwidgets")
    ip.run_line_magic("iw", "model model")
    yield ip
    ip.run_line_magic("unload_ext", "interpwidgets")


@pytest.fixture(scope="module")
def notebook(shell):
    return shell.magics_manager.registry[InterpMagics.__name__].notebook


@pytest.fixture(scope="module")
def ioi4(teaching_model):
    return iw.tasks.ioi(teaching_model, n=4, seed=0)


def _formats(shell, obj) -> dict:
    return shell.display_formatter.format(obj)[0]


def test_a_patch_result_as_a_cell_value_displays_as_a_live_heatmap(shell, teaching_model, ioi4):
    """The mime bundle IPython builds for a PatchResult holds a widget view (and the heatmap's static preview)."""
    with iw.config.scoped(progress=False):
        result = iw.patching.activation_patch(teaching_model, ioi4, site="z")
    data = _formats(shell, result)
    assert WIDGET_MIME in data
    assert "Activation patching" in data["text/html"]


def test_lens_and_circuit_results_display_as_their_widgets(shell, teaching_model):
    """AttentionResult -> AttentionPatterns, a Circuit -> CircuitGraph: each shows as a live widget."""
    attention = iw.lens.attention_patterns(teaching_model, PROMPT, progress=False)
    assert WIDGET_MIME in _formats(shell, attention)
    nodes = [iw.circuits.Node("resid_post1/3@4", 1, "resid_post", 3, 4, "resid_post1 #3 @4", 0.5,
                              dictionary="blocks.1.hook_resid_post"),
             iw.circuits.Node("metric", 4, "metric", label="metric")]
    circuit = iw.circuits.Circuit(nodes=nodes, edges=[iw.circuits.Edge("resid_post1/3@4", "metric", 0.5)])
    assert WIDGET_MIME in _formats(shell, circuit)


def test_an_sae_displays_as_a_card_naming_its_architecture_hooks_and_file(shell, teaching_model):
    """The card shows what a user checks first: architecture, the hook read, widths, k, and the folder it came from."""
    sae = iw.sae.pretrained(teaching_model)["blocks.2.hook_resid_post"]
    html = _formats(shell, sae)["text/html"]
    for fact in ("batchtopk SAE", "blocks.2.hook_resid_post", f"{sae.cfg.d_sae:,}", f"{sae.cfg.k}",
                 "blocks_2_hook_resid_post"):
        assert fact in html, fact
    transcoder = iw.sae.pretrained(teaching_model)["blocks.1.ln2.hook_normalized"]
    assert "writes" in repr(iw.view(transcoder)) and "blocks.1.hook_mlp_out" in repr(iw.view(transcoder))


def test_an_evaluation_displays_as_a_table_with_units(shell, teaching_model):
    """iw.sae.evaluate's dict shows as a table whose rows carry the numbers, formatted with their units."""
    sae = iw.sae.pretrained(teaching_model)["blocks.2.hook_resid_post"]
    stats = iw.sae.evaluate(teaching_model, sae, n_batches=1, batch_size=2)
    assert isinstance(stats, dict)
    html = _formats(shell, stats)["text/html"]
    assert f"{stats['explained_variance']:.3f}" in html and f"{stats['dead_fraction']:.1%}" in html
    assert "CE loss recovered" in html


def test_a_faithfulness_curve_displays_as_a_png_plot(shell):
    """A FaithfulnessCurve shows as its plot (a PNG), titled with the size at which faithfulness reaches 0.8."""
    curve = iw.circuits.FaithfulnessCurve([1, 2, 4], [0.2, 0.85, 1.0], [0.9, 0.3, 0.0], 2.0, 0.1)
    data = _formats(shell, curve)
    assert data["image/png"] and "0.8 at 2 nodes" in data["text/plain"]


def test_show_raises_a_clear_error_for_a_type_without_a_view():
    """iw.view of an unregistered type names the types it can show and how to register one."""
    with pytest.raises(TypeError, match="register_view"):
        iw.view(object())


def test_a_view_registered_after_loading_is_used_by_the_loaded_shell(shell):
    """register_view reaches the formatter of a shell where the extension is already loaded; the card is the view."""

    class Thing:
        pass

    display.register_view(Thing, lambda thing: magics.Message("a thing", kind="help"))
    try:
        assert "a thing" in _formats(shell, Thing())["text/html"]
    finally:
        display.VIEWS.pop(display.type_name(Thing))


def test_unloading_restores_plain_reprs():
    """After %unload_ext the magic is gone and a result shows its plain repr again; loading twice is harmless."""
    ip = InteractiveShell.instance()
    curve = iw.circuits.FaithfulnessCurve([1], [1.0], [0.0], 1.0, 0.0)
    ip.run_line_magic("load_ext", "interpwidgets")
    iw.install()  # a second load is a no-op
    assert "image/png" in _formats(ip, curve)
    ip.run_line_magic("unload_ext", "interpwidgets")
    assert "image/png" not in _formats(ip, curve)
    assert ip.find_line_magic("iw") is None
    ip.run_line_magic("load_ext", "interpwidgets")  # the module fixture's shell keeps working


def test_the_magic_help_lists_every_command(shell):
    """%iw? shows the magic's docstring, which lists every command with its form; %iw help does too."""
    doc = shell.find_line_magic("iw").__doc__
    for command in magics.COMMANDS.values():
        assert command.usage in doc
    assert "%iw lens PROMPT" in repr(magics.run(magics.Notebook(), "help"))


GOOD = [
    (f'attention "{PROMPT}" --layer 1 --head 2', "AttentionPatterns"),
    (f'features "{PROMPT}" --sae blocks.2.hook_resid_post', "TokenFeatures"),
    ("dashboard blocks.2.hook_resid_post:5", "FeatureDashboard"),
    (f'lens "{PROMPT}"', "LogitLens"),
    (f"dla \"{PROMPT}\" --answer ' Mary' --wrong ' John'", "DirectLogitAttribution"),
    ("dla ioi --n 4", "DirectLogitAttribution"),
    ("patch ioi --site z --n 4", "PatchHeatmap"),
    ("patch ioi --site z --method atp --n 4", "PatchHeatmap"),
    (f'steer "{PROMPT}" --feature blocks.2.hook_resid_post:5 --scale 1.5 --tokens 3', "Steering"),
    ("circuit ioi --n 2 --node-threshold 0.5", "CircuitGraph"),
    ('graph "When Mary and John went to the store, John gave a drink to" --max-features 50', "AttributionGraphView"),
    ("model", "Card"),
    ("sae", "Card"),
]


@pytest.mark.parametrize(("line", "view"), GOOD, ids=[line.split()[0] + str(i) for i, (line, _) in enumerate(GOOD)])
def test_each_magic_returns_the_view_of_its_engine_result(shell, line, view):
    """Each command runs on the notebook's model and returns its view as the cell's value."""
    with iw.config.scoped(progress=False):
        value = shell.run_line_magic("iw", line)
    assert type(value).__name__ == view


def test_the_steer_magic_sets_the_slider_to_the_scale(shell):
    """--scale moves the feature's slider, so the first generation steers by it."""
    value = shell.run_line_magic("iw", f'steer "{PROMPT}" --feature blocks.2.hook_resid_post:5 --scale 1.5 --tokens 2')
    assert value.scales == [1.5] and value.rows[0]["feature"] == 5


BAD = [
    ("attenton x", "unknown command 'attenton' (did you mean attention?)"),
    ("attention", "the following arguments are required: prompt"),
    ("attention 'unclosed", "No closing quotation"),
    ("attention Mary --layer 9", "layer must be between 0 and 3"),
    ("attention Mary --layer one", "argument --layer: invalid int value: 'one'"),
    ("features Mary --sae blocks.9.hook_resid_post", "no dictionary reads 'blocks.9.hook_resid_post'"),
    ("dashboard blocks.2.hook_resid_post", "a feature is HOOK:INDEX"),
    ("dashboard blocks.2.hook_resid_post:99999", "99999"),
    ("lens ''", "empty"),
    ("lens Mary --token ' Mary John'", "one token"),
    ("dla hello", "needs --answer TOKEN"),
    ("dla ioi --answer ' Mary'", "a task brings its own answers"),
    ("patch iio", "unknown task 'iio' (did you mean ioi?)"),
    ("patch ioi --site zz --n 2", "Unknown patching site 'zz'"),
    ("patch ioi --n 0", "--n must be at least 1"),
    ("patch ioi --method grad", "argument --method: invalid choice: 'grad'"),
    ("steer Mary", "the following arguments are required: --feature"),
    ("steer Mary --feature blocks.2.hook_resid_post:5 --scale 1e9", "outside the slider's range"),
    ("circuit ioi --method xyz", "invalid choice: 'xyz'"),
    ("graph 'a prompt' --node-threshold 1.5", "--node-threshold is a fraction of the influence in [0, 1]"),
    ("model /no/such/folder", "/no/such/folder"),
    ("sae /no/such/folder", "/no/such/folder"),
    ("help nothing", "unknown command 'nothing'"),
    ("prompts", "prompts is a cell magic"),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[f"{line.split()[0]}{i}" for i, (line, _) in enumerate(BAD)])
def test_each_magic_answers_a_bad_argument_with_a_message_not_a_traceback(shell, notebook, capsys, line, message):
    """The magic displays one paragraph naming what was wrong (and the command's form) and returns nothing."""
    model = notebook.model
    before = [p.detach().clone() for p in list(model.parameters())[:2]]
    value = magics.run(notebook, line)
    assert isinstance(value, magics.Message), value
    assert message in value.text, value.text
    assert "Traceback" not in value.text and "usage" in repr(value)
    assert shell.run_line_magic("iw", line) is None  # shown, not returned
    assert notebook.model is model and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_unexpected_error_is_a_message_and_its_traceback_is_kept(notebook, monkeypatch):
    """A bug in a command still answers with a message; %iw traceback then shows the traceback for a report."""

    def broken(nb, args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(magics.COMMANDS["attention"], "run", broken)
    value = magics.run(notebook, "attention x")
    assert "ZeroDivisionError: boom" in value.text and "%iw traceback" in value.text
    assert "ZeroDivisionError" in magics.run(notebook, "traceback").text


def test_the_prompts_cell_magic_lays_out_one_view_per_line(shell):
    """%%iw prompts: one view per non-empty line, side by side; an empty cell gets a message."""
    box = shell.run_cell_magic("iw", "prompts --view attention", "When Mary and John\n\nJohn went to the store\n")
    assert [type(v).__name__ for v in box.children] == ["AttentionPatterns", "AttentionPatterns"]
    assert box.children[1]._result.tokens[-1] == " store"
    assert "holds no prompt" in magics.run(magics.Notebook(), "prompts", "\n \n").text


def test_the_model_magic_takes_a_notebook_variable(shell, notebook, teaching_model):
    """%iw model NAME uses the notebook's variable NAME when it holds a model (no reload)."""
    shell.user_ns["other"] = teaching_model
    shell.run_line_magic("iw", "model other")
    assert notebook.model is teaching_model


def test_tab_completion_offers_commands_tasks_options_sites_and_hooks(shell):
    """IPython's completer, through the extension's hook, completes each part of a %iw line."""
    assert shell.complete("", "%iw pat")[1] == ["patch"]
    assert shell.complete("", "%iw patch ")[1] == list(magics.TASK_NAMES)
    assert "z" in shell.complete("", "%iw patch ioi --site ")[1]
    assert "--site" in shell.complete("", "%iw patch ioi --s")[1]
    assert "blocks.2.hook_resid_post" in shell.complete("", "%iw features hi --sae blocks.2")[1]
    assert shell.complete("", "%iw patch ioi --method ")[1] == ["activation", "atp", "ig"]
