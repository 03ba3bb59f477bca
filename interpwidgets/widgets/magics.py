"""`%iw` and `%%iw`: one-line checks in a notebook, on the notebook's current model and dictionaries.

    %load_ext interpwidgets
    %iw attention "When Mary and John went to the store, John gave a drink to"
    %iw patch ioi --site z

Each command parses its arguments, calls one engine function and returns the view of its result (the value of the
cell, so it displays). A bad argument or a refused input gets a short message in the notebook saying what was wrong
and the right form, never a traceback (`%iw traceback` shows the last one, for a bug report). The model is the
bundled teaching model until `%iw model NAME|FOLDER|variable` sets another; the dictionaries are the teaching
model's bundled SAEs until `%iw sae FOLDER|variable` sets others.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from traitlets import TraitError

from interpwidgets.widgets.messages import RequestError
from interpwidgets.widgets.static_html import BORDER, FONT, MUTED, TEXT, esc

TASK_NAMES = ("ioi", "induction", "brackets")
DEFAULT_N = 16  # prompts per task: a quick check, seconds on a CPU


class UsageError(Exception):
    """A command line that cannot run: the message says what was wrong."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print and exit
        raise UsageError(message)


@dataclass
class Command:
    name: str
    arguments: str  # the usage line after "%iw NAME"
    summary: str
    run: Callable[[Notebook, argparse.Namespace], Any]
    options: list[tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=list)
    cell: bool = False  # a %%iw command: the cell's lines are its input

    @property
    def usage(self) -> str:
        return f"{'%%' if self.cell else '%'}iw {self.name} {self.arguments}".rstrip()

    def parser(self) -> _Parser:
        parser = _Parser(prog=self.usage, add_help=False, allow_abbrev=False)
        for flags, kwargs in self.options:
            parser.add_argument(*flags, **kwargs)
        return parser


class Message:
    """What a command says instead of a traceback: one paragraph, and the right form."""

    def __init__(self, text: str, usage: str = "", *, kind: str = "error") -> None:
        self.text, self.usage, self.kind = text, usage, kind

    def __repr__(self) -> str:
        return self.text + (f"\nusage: {self.usage}" if self.usage else "")

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        colour = "var(--jp-error-color1, #d32f2f)" if self.kind == "error" else "var(--jp-brand-color1, #1976d2)"
        usage = (
            f'<div style="margin-top:4px;color:{MUTED}">usage: <code>{esc(self.usage)}</code></div>' if self.usage else ""
        )
        html = (
            f'<div class="iw-message iw-message-{self.kind}" style="font-family:{FONT};font-size:13px;color:{TEXT};'
            f'border:1px solid {BORDER};border-left:3px solid {colour};padding:6px 10px;white-space:pre-wrap">'
            f"{esc(self.text)}{usage}</div>"
        )
        return {"text/plain": repr(self), "text/html": html}


class Notebook:
    """The magics' state: the current model and dictionaries, and the last traceback."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace = namespace if namespace is not None else {}
        self._model: Any = None
        self._saes: Any = None
        self.last_traceback: str | None = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from interpwidgets.models import load_model

            self._model = load_model()
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model, self._saes = model, None

    @property
    def saes(self) -> Any:
        if self._saes is None:
            from interpwidgets.sae import pretrained

            try:
                self._saes = pretrained(self.model)
            except ValueError as error:
                raise UsageError(f"{error} Set the notebook's dictionaries with %iw sae FOLDER (or a variable).") from None
        return self._saes

    @saes.setter
    def saes(self, saes: Any) -> None:
        self._saes = saes

    def variable(self, name: str) -> Any:
        """The notebook variable `name`, or None when there is none (names only, never evaluated code)."""
        return self.namespace.get(name) if name.isidentifier() else None

    def task(self, name: str, n: int, seed: int) -> Any:
        from interpwidgets import tasks

        if name not in TASK_NAMES:
            raise UsageError(f"unknown task {name!r}{_close(name, TASK_NAMES)}; tasks: {', '.join(TASK_NAMES)}.")
        if n < 1:
            raise UsageError(f"--n must be at least 1, got {n}.")
        return getattr(tasks, name)(self.model, n=n, seed=seed)

    def hook_names(self) -> list[str]:
        try:
            return sorted(self.model.hook_dict)
        except Exception:  # noqa: BLE001 - completion must never fail
            return []


# ---- the commands ------------------------------------------------------------------------------------------
def _model(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.widgets.cards import model_card

    if args.source is not None:
        given = nb.variable(args.source)
        if given is not None and hasattr(given, "cfg"):
            nb.model = given
        else:
            from interpwidgets.models import load_model

            nb.model = load_model(None if args.source == "teaching" else args.source, device=args.device)
    return model_card(nb.model)


def _sae(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.sae import SAE, SAESet, load, pretrained
    from interpwidgets.widgets.cards import sae_card, sae_set_card

    if args.source is not None:
        given = nb.variable(args.source)
        if given is not None and not isinstance(given, str):
            nb.saes = SAESet.of(given)
        else:
            nb.saes = pretrained(nb.model) if args.source == "pretrained" else SAESet.of(load(args.source, device=nb.model.cfg.device))
    saes = nb.saes
    return sae_card(next(iter(saes.values()))) if len(saes) == 1 and isinstance(next(iter(saes.values())), SAE) else sae_set_card(saes)


def _attention(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.widgets.attention import AttentionPatterns

    return AttentionPatterns(nb.model, args.prompt, layer=args.layer, head=args.head, weighting=args.weighting)


def _features(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.widgets.token_features import TokenFeatures

    return TokenFeatures(nb.model, nb.saes, args.prompt, hook=_hook(nb, args.sae), feature=args.feature)


def _dashboard(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.widgets.feature_dashboard import FeatureDashboard

    hook, feature = _feature_spec(nb, args.feature)
    return FeatureDashboard(nb.model, nb.saes, hook=hook, feature=feature)


def _lens(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.lens import logit_lens
    from interpwidgets.widgets.logit_lens import LogitLens

    return LogitLens(logit_lens(nb.model, args.prompt), token=args.token)


def _dla(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.lens import direct_logit_attribution
    from interpwidgets.widgets.dla import DirectLogitAttribution

    if args.input in TASK_NAMES:
        if args.answer is not None or args.wrong is not None:
            raise UsageError("a task brings its own answers: drop --answer/--wrong, or give a prompt instead of the task.")
        result = direct_logit_attribution(nb.model, nb.task(args.input, args.n, args.seed))
    else:
        if args.answer is None:
            raise UsageError(f"{args.input!r} is no task ({', '.join(TASK_NAMES)}), so it is read as a prompt, which "
                             "needs --answer TOKEN (and optionally --wrong TOKEN).")
        result = direct_logit_attribution(nb.model, args.input, args.answer, args.wrong)
    return DirectLogitAttribution(result)


def _patch(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets import patching
    from interpwidgets.widgets.patch_heatmap import PatchHeatmap

    task = nb.task(args.task, args.n, args.seed)
    if args.method == "activation":
        result = patching.activation_patch(nb.model, task, site=args.site)
    else:
        result = patching.attribution_patch(nb.model, task, site=args.site, method=args.method)
    return PatchHeatmap(result)


def _steer(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.widgets.steering import Steering

    hook, feature = _feature_spec(nb, args.feature)
    widget = Steering(nb.model, nb.saes, args.prompt, features=[(hook, feature)], max_new_tokens=args.tokens)
    limit = widget.rows[0]["limit"]
    if not abs(args.scale) <= limit:
        widget.close()
        raise UsageError(f"--scale {args.scale:g} is outside the slider's range [-{limit:.3g}, {limit:.3g}] for this feature "
                         "(twice the typical activation norm at its hook).")
    widget.scales = [args.scale]
    return widget


def _circuit(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.circuits import feature_circuit
    from interpwidgets.widgets.circuit_graph import CircuitGraph

    task = nb.task(args.task, args.n, args.seed)
    circuit = feature_circuit(nb.model, nb.saes, task, method=args.method, node_threshold=args.node_threshold)
    return CircuitGraph(circuit, model=nb.model, saes=nb.saes, task=task)


def _graph(nb: Notebook, args: argparse.Namespace) -> Any:
    from interpwidgets.circuits import attribution_graph
    from interpwidgets.widgets.attribution_graph import AttributionGraphView

    for name in ("node_threshold", "edge_threshold"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} is a fraction of the influence in [0, 1], got {getattr(args, name):g}.")
    if args.max_features < 0:
        raise UsageError(f"--max-features must be >= 0, got {args.max_features}.")
    graph = attribution_graph(nb.model, nb.saes, args.prompt, max_feature_nodes=args.max_features)
    return AttributionGraphView(graph, saes=nb.saes, node_threshold=args.node_threshold, edge_threshold=args.edge_threshold)


VIEWS_OF_PROMPTS = ("attention", "lens", "features")


def _prompts(nb: Notebook, args: argparse.Namespace) -> Any:
    import ipywidgets

    prompts = [line.strip() for line in args.cell.splitlines() if line.strip()]
    if not prompts:
        raise UsageError("the cell holds no prompt: write one prompt per line below %%iw prompts.")
    make = {
        "attention": lambda p: _attention(nb, argparse.Namespace(prompt=p, layer=0, head=0, weighting="attention")),
        "lens": lambda p: _lens(nb, argparse.Namespace(prompt=p, token=None)),
        "features": lambda p: _features(nb, argparse.Namespace(prompt=p, sae=args.sae, feature=0)),
    }[args.view]
    views = [make(prompt) for prompt in prompts]
    return ipywidgets.Box(views, layout=ipywidgets.Layout(display="flex", flex_flow="row wrap", gap="8px"))


def _help(nb: Notebook, args: argparse.Namespace) -> Any:
    if args.command is not None:
        command = _command(args.command)
        return Message(f"{command.summary}", command.usage, kind="help")
    return Message(HELP, kind="help")


def _traceback(nb: Notebook, args: argparse.Namespace) -> Any:
    return Message(nb.last_traceback or "no command has failed with an unexpected error yet.", kind="help")


N_OPTIONS = [(("--n",), {"type": int, "default": DEFAULT_N}), (("--seed",), {"type": int, "default": 0})]

COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("help", "[COMMAND]", "List the commands, or show one command's form.", _help,
            [(("command",), {"nargs": "?"})]),
    Command("model", "[teaching | NAME | FOLDER | variable] [--device D]",
            "Set the notebook's model (the bundled teaching model, a Hugging Face name or folder, or a model variable) "
            "and show its card; without an argument, show the current one.", _model,
            [(("source",), {"nargs": "?"}), (("--device",), {})]),
    Command("sae", "[pretrained | FOLDER | variable]",
            "Set the notebook's dictionaries (the teaching model's bundled SAEs, a folder iw.sae.load reads, or a "
            "variable holding an SAE, a list or an SAESet) and show them.", _sae, [(("source",), {"nargs": "?"})]),
    Command("attention", "PROMPT [--layer L] [--head H] [--weighting attention|value]",
            "Every head's attention pattern on PROMPT.", _attention,
            [(("prompt",), {}), (("--layer",), {"type": int, "default": 0}), (("--head",), {"type": int, "default": 0}),
             (("--weighting",), {"choices": ("attention", "value"), "default": "attention"})]),
    Command("features", "PROMPT [--sae HOOK] [--feature N]",
            "SAE feature activations on PROMPT's tokens (click a token or feature to ablate or steer it).", _features,
            [(("prompt",), {}), (("--sae",), {}), (("--feature",), {"type": int, "default": 0})]),
    Command("dashboard", "HOOK:FEATURE", "A feature's dashboard: top activating examples, density, logit effects.",
            _dashboard, [(("feature",), {})]),
    Command("lens", "PROMPT [--token TOKEN]",
            "Logit lens: what each layer's residual stream already predicts at every position.", _lens,
            [(("prompt",), {}), (("--token",), {})]),
    Command("dla", "TASK | PROMPT --answer TOKEN [--wrong TOKEN] [--n N] [--seed S]",
            "Direct logit attribution: each head's and MLP's direct effect on logit(answer) - logit(wrong).", _dla,
            [(("input",), {}), (("--answer",), {}), (("--wrong",), {}), *N_OPTIONS]),
    Command("patch", "TASK [--site SITE] [--method activation|atp|ig] [--n N] [--seed S]",
            "Activation or attribution patching over a task's clean/corrupt prompts, as a clickable heatmap.", _patch,
            [(("task",), {}), (("--site",), {"default": "resid_pre"}),
             (("--method",), {"choices": ("activation", "atp", "ig"), "default": "activation"}), *N_OPTIONS]),
    Command("steer", "PROMPT --feature HOOK:FEATURE [--scale S] [--tokens N]",
            "Generate from PROMPT with and without a feature's decoder direction added (a slider per feature).", _steer,
            [(("prompt",), {}), (("--feature",), {"required": True}), (("--scale",), {"type": float, "default": 0.0}),
             (("--tokens",), {"type": int, "default": 20})]),
    Command("circuit", "TASK [--method atp|ig] [--node-threshold T] [--n N] [--seed S]",
            "A sparse feature circuit for a task over the notebook's SAEs, drawn as a graph you can ablate.", _circuit,
            [(("task",), {}), (("--method",), {"choices": ("atp", "ig"), "default": "atp"}),
             (("--node-threshold",), {"type": float, "default": 0.1, "dest": "node_threshold"}), *N_OPTIONS]),
    Command("graph", "PROMPT [--node-threshold T] [--edge-threshold T] [--max-features N]",
            "The attribution graph of PROMPT over the notebook's transcoders: prune it live, hover for labels, click to "
            "ablate or steer a feature.", _graph,
            [(("prompt",), {}), (("--node-threshold",), {"type": float, "default": 0.8, "dest": "node_threshold"}),
             (("--edge-threshold",), {"type": float, "default": 0.98, "dest": "edge_threshold"}),
             (("--max-features",), {"type": int, "default": 7500, "dest": "max_features"})]),
    Command("traceback", "", "The traceback of the last command that failed with an unexpected error.", _traceback),
    Command("prompts", "[--view attention|lens|features] [--sae HOOK]   (one prompt per line in the cell)",
            "The views of several prompts side by side.", _prompts,
            [(("--view",), {"choices": VIEWS_OF_PROMPTS, "default": "attention"}), (("--sae",), {})], cell=True),
]}

HELP = "interpwidgets magics: one-line checks on the notebook's model.\n\n" + "\n".join(
    f"  {c.usage}\n      {c.summary}" for c in COMMANDS.values()
) + "\n\nA PROMPT with spaces goes in quotes. %iw help COMMAND shows one command."


def _close(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _command(name: str) -> Command:
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r}{_close(name, COMMANDS)}. Commands: {', '.join(COMMANDS)}.")
    return COMMANDS[name]


def _hook(nb: Notebook, name: str | None) -> str | None:
    if name is None:
        return None
    if name not in nb.saes:
        raise UsageError(f"no dictionary reads {name!r}{_close(name, nb.saes)}; the notebook's dictionaries read: "
                         f"{', '.join(nb.saes)}.")
    return name


def _feature_spec(nb: Notebook, spec: str) -> tuple[str, int]:
    hook, sep, number = spec.rpartition(":")
    if not sep or not number.strip().isdigit():
        raise UsageError(f"a feature is HOOK:INDEX, e.g. blocks.2.hook_resid_post:798; got {spec!r}.")
    return _hook(nb, hook), int(number)


def run(nb: Notebook, line: str, cell: str | None = None) -> Any:
    """The value of `%iw line` (or of the `%%iw line` cell magic): a view, or a `Message`."""
    command: Command | None = None
    try:
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"cannot read the command line: {error} (a prompt with a quote in it goes in the other "
                             "kind of quotes).") from None
        if not words:
            return Message(HELP, kind="help")
        command = _command(words[0])
        if command.cell != (cell is not None):
            form = "a cell magic: start the cell with %%iw" if command.cell else "a line magic: %iw"
            raise UsageError(f"{command.name} is {form} {command.name} ...")
        args = command.parser().parse_args(words[1:])
        if cell is not None:
            args.cell = cell
        return command.run(nb, args)
    except UsageError as error:
        return Message(str(error), command.usage if command else "%iw help")
    except (ValueError, TypeError, KeyError, IndexError, OSError, TraitError, RequestError) as error:
        # the engine's refusals: their messages name the problem and the fix
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        return Message(f"{command.name if command else 'iw'}: {text}", command.usage if command else "")
    except Exception as error:  # noqa: BLE001 - a magic answers with a message, never a traceback
        nb.last_traceback = traceback.format_exc()
        return Message(f"{command.name if command else 'iw'} failed: {type(error).__name__}: {error}. This looks like a "
                       "bug: %iw traceback shows where, for a report.", command.usage if command else "")


def complete(nb: Notebook, line: str) -> list[str]:
    """Completions of the last word of `line` (the text after %iw so far): commands, task names, options,
    choices and hook names."""
    words = line.split()
    current = "" if line.endswith(" ") or not words else words[-1]
    before = words[:-1] if current else words
    if not before:
        return [name for name in COMMANDS if name.startswith(current)]
    command = COMMANDS.get(before[0])
    if command is None:
        return []
    previous = before[-1] if len(before) > 1 else ""
    options = dict(command.options)
    if previous.startswith("--") and (previous,) in options:
        spec = options[(previous,)]
        if "choices" in spec:
            return [c for c in spec["choices"] if c.startswith(current)]
        if previous in ("--sae", "--feature"):
            return [h for h in (*_sae_hooks(nb), *nb.hook_names()) if h.startswith(current)]
        if previous == "--site":
            from interpwidgets.patching.sites import SITES

            return [s for s in SITES if s.startswith(current)]
        return []
    if current.startswith("-"):
        return [flags[0] for flags, _ in command.options if flags[0].startswith(current)]
    if len(before) == 1 and command.name in ("patch", "dla", "circuit"):
        return [t for t in TASK_NAMES if t.startswith(current)]
    if len(before) == 1 and command.name == "dashboard":
        return [h for h in _sae_hooks(nb) if h.startswith(current)]
    return []


def _sae_hooks(nb: Notebook) -> list[str]:
    try:
        return list(nb.saes)
    except Exception:  # noqa: BLE001 - completion must never fail (no SAEs for this model)
        return []
