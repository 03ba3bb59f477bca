"""Copy as code: every widget action recorded as the Python call that reproduces its result.

A handler that acts records one `Step` (what was done, the call, the numbers shown) and sends its code with
the reply; the front end shows it under the outcome with a copy button (`codeBox` in js/lib/code.ts):

    @handles("intervene")
    def _intervene(self, params):
        cells = get_indices(params, "cells", self._values.shape, self.max_cells)
        outcome = self.result.intervene(cells, ablation="mean")
        step = self.record(
            f"mean-ablate {', '.join(outcome.components)}",             # the action, in words
            "{result}.intervene({cells}, ablation={ablation})",         # the call; {slots} are filled below
            {"metric_after": float(outcome.metric_after)},              # the numbers the widget shows
            result=Ref(self.result, "result", "the PatchResult this widget shows"),
            cells=cells, ablation="mean",
        )
        return {..., "code": step.snippet}

    # js/widgets/my_view.ts: under the outcome
    //   import { codeBox } from "../lib/code";
    //   setChildren(outcomePanel, ...drawn(reply), codeBox(reply.code));   // null (nothing) without code

A slot holding plain Python data (ints, floats, strings, None, bools, and lists / tuples / dicts of them) is
written as its `repr`; any other object (a result, the model, SAEs, a tensor) is written as a name, never as its
repr: the notebook's own name for that object (found by identity in the IPython user namespace, skipping names
that start with "_"), else an expression on the widget's own name (`heatmap.result`, from the `Ref`'s `via`),
else a default name (the slot's, made unique) that the code's header explains:
``# result = the PatchResult this widget shows (widget.result)``. Templates use `str.format` syntax, so a literal
brace is written twice; a slot may hold another `Snippet` (from `widget.snippet(...)`), inserted as it is.
`iw.` in a template means `import interpwidgets as iw`, added where the notebook has not bound it.

`widget.history` keeps the steps (newest last, at most `HISTORY_LIMIT`); `widget.code()` is one runnable cell.
A request that fails records nothing.
"""

from __future__ import annotations

import itertools
import keyword
import math
import re
import string
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

HISTORY_LIMIT = 200
IMPORT_IW = "import interpwidgets as iw"
_USES_IW = re.compile(r"(?<![\w.])iw\.")
_order = itertools.count()


@dataclass(frozen=True)
class Ref:
    """An object a recorded call refers to by name.

    via: how the widget reaches it (`"result"`, `"stats('blocks.1.hook_resid_post')"`), used as
    `<widget's name>.<via>` when the notebook names the widget but not the object; what: what the object is,
    for the header comment of a default name ("the PatchResult this widget shows").
    """

    obj: Any
    via: str | None = None
    what: str = ""


@dataclass(frozen=True)
class Snippet:
    """Code with its names resolved: `text`, and the default names it assumes as `(name, description)` pairs."""

    text: str
    assumes: tuple[tuple[str, str], ...] = ()
    uses_iw: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Step:
    """One recorded action: `action` in words, `code` the call that reproduces it, `shown` the numbers shown.

    assumes: the default names `code` uses for objects the notebook had no name for, with what each stands for;
    uses_iw: `code` calls `iw.`, which needs `import interpwidgets as iw`.
    """

    action: str
    code: str
    shown: dict[str, Any]
    assumes: tuple[tuple[str, str], ...] = ()
    uses_iw: bool = False
    order: int = field(default_factory=lambda: next(_order), compare=False, repr=False)

    @property
    def snippet(self) -> str:
        """The code as the widget shows it: a comment per assumed name, the import if the notebook lacks it, the call."""
        lines = [f"# {name} = {description}" for name, description in self.assumes]
        if self.uses_iw and not _binds_iw(_user_namespace()):
            lines.append(IMPORT_IW)
        return "\n".join([*lines, self.code])


class Names:
    """The default names handed out to objects without a notebook name (shared by the views of one composite)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, str, str]] = {}  # id -> (object, name, description)
        self._taken: set[str] = set()

    def default(self, slot: str, ref: Ref, owner: str) -> tuple[str, str]:
        """(name, description) for `ref.obj`: the one it already has, or `slot` made unique; `owner` is how the
        description names the widget ("widget", "explorer.dashboard")."""
        known = self._by_id.get(id(ref.obj))
        if known is not None and known[0] is ref.obj:
            return known[1], known[2]
        base = slot if slot.isidentifier() and not keyword.iskeyword(slot) else "value"
        name = next(n for n in itertools.chain([base], (f"{base}_{i}" for i in itertools.count(2))) if n not in self._taken)
        what = ref.what or f"the {type(ref.obj).__name__} this widget uses"
        description = f"{what} ({owner}.{ref.via})" if ref.via else what
        self._by_id[id(ref.obj)] = (ref.obj, name, description)
        self._taken.add(name)
        return name, description


class History:
    """What `InterpWidget` keeps: the steps, the default names, and the steps of the request being answered."""

    def __init__(self, names: Names | None = None) -> None:
        self.steps: list[Step] = []
        self.names = names or Names()
        self.pending: list[Step] | None = None  # collecting during a request; kept only if it succeeds

    def add(self, step: Step) -> Step:
        target = self.pending if self.pending is not None else self.steps
        last = target[-1] if target else (self.steps[-1] if self.steps else None)
        if last is not None and (last.action, last.code) == (step.action, step.code):
            return last  # the same action again (a redraw asking for what is shown): one step
        target.append(step)
        del self.steps[:-HISTORY_LIMIT]
        return step

    def begin(self) -> None:
        self.pending = []

    def end(self, ok: bool) -> None:
        pending, self.pending = self.pending or [], None
        if ok:
            for step in pending:
                self.add(step)


def render(template: str, slots: Mapping[str, Any], *, names: Names, owner: Any = None,
           parent: tuple[Any, str] | None = None) -> Snippet:
    """`template` with each `{slot}` replaced by a literal or a name (see the module docstring).

    owner: the widget, whose notebook name prefixes a `Ref.via`; parent: (composite, attribute) through which
    the widget is reached when only the composite is named.
    """
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    missing, unused = sorted(fields - set(slots)), sorted(set(slots) - fields)
    if missing or unused:
        raise ValueError(f"template {template!r}: slots without values {missing}, values without slots {unused}")
    namespace = _user_namespace()
    by_id = _names_by_id(namespace, skip=owner)
    owner_name = _owner_name(namespace, by_id, owner, parent)
    assumes: dict[str, str] = {}
    uses_iw = bool(_USES_IW.search(_literal_text(template)))
    values: dict[str, str] = {}
    for slot, value in slots.items():
        if isinstance(value, Snippet):
            values[slot] = value.text
            assumes.update(value.assumes)
            uses_iw = uses_iw or value.uses_iw
            continue
        try:
            values[slot] = literal(value)
            continue
        except TypeError:
            pass
        ref = value if isinstance(value, Ref) else Ref(value)
        name = by_id.get(id(ref.obj))
        if name is None and ref.via and owner_name:
            name = f"{owner_name}.{ref.via}"
        if name is None:
            label = "widget" if parent is None else f"{type(parent[0]).__name__.lower()}.{parent[1]}"
            name, description = names.default(slot, ref, label)
            assumes[name] = description
        values[slot] = name
    return Snippet(template.format_map(values), tuple(assumes.items()), uses_iw)


def literal(value: Any) -> str:
    """Python source for plain data (ints, floats, strings, bools, None, lists / tuples / dicts of them).

    Raises TypeError for anything else (objects are referred to by name, never by their repr).
    """
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, int) or _is_numpy(value, "integer"):
        return repr(int(value))
    if isinstance(value, float) or _is_numpy(value, "floating"):
        number = float(value)
        return repr(number) if math.isfinite(number) else f"float({str(number)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{type(value).__name__} is not plain data")


def cell(steps: Iterable[Step]) -> str:
    """One runnable cell: the names assumed, the import if needed, then each step's code after `# <action>`."""
    steps = sorted(steps, key=lambda step: step.order)
    if not steps:
        return "# no actions recorded yet"
    assumed: dict[str, str] = {}
    for step in steps:
        assumed.update(step.assumes)
    header = []
    if assumed:
        header.append("# names this code assumes (not bound in the notebook when it was recorded):")
        header += [f"# {name} = {description}" for name, description in assumed.items()]
    if any(step.uses_iw for step in steps):
        header.append(IMPORT_IW)
    body = [f"# {step.action}\n{step.code}" for step in steps]
    return "\n".join(header + ([""] if header else []) + ["\n\n".join(body)]) + "\n"


# ---- the notebook's names
def _user_namespace() -> Mapping[str, Any]:
    """The IPython user namespace, or {} outside IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "user_ns", None) or {}


def _names_by_id(namespace: Mapping[str, Any], skip: Any = None) -> dict[int, str]:
    """id(object) -> its first public name in `namespace` (not `skip`, the widget itself)."""
    out: dict[int, str] = {}
    for name, value in list(namespace.items()):
        if name.startswith("_") or not name.isidentifier() or keyword.iskeyword(name) or value is skip:
            continue
        out.setdefault(id(value), name)
    return out


def _owner_name(namespace: Mapping[str, Any], by_id: Mapping[int, str], owner: Any,
                parent: tuple[Any, str] | None) -> str | None:
    """The widget's name in the notebook, or its composite's name and attribute ("explorer.dashboard")."""
    for name, value in namespace.items():
        if value is owner and not name.startswith("_") and name.isidentifier():
            return name
    if parent is not None:
        name = by_id.get(id(parent[0]))
        if name is not None:
            return f"{name}.{parent[1]}"
    return None


def _binds_iw(namespace: Mapping[str, Any]) -> bool:
    return namespace.get("iw") is sys.modules.get("interpwidgets")


def _literal_text(template: str) -> str:
    return "".join(text for text, _, _, _ in string.Formatter().parse(template))


def _is_numpy(value: Any, kind: str) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, getattr(numpy, kind))



def dictionary(widget: Any, hook: str) -> Snippet:
    """The SAE at `hook` of `widget.saes` as code: through what the widget was given (`widget._given_saes`: one
    SAE, or a mapping holding it) when that holds the same SAE, else through `widget.saes`."""
    given, sae = getattr(widget, "_given_saes", None), widget.saes[hook]
    if given is sae:
        return widget.snippet("{sae}", sae=Ref(sae, f"saes[{hook!r}]", f"the SAE reading {hook}"))
    holder = given if isinstance(given, Mapping) and given.get(hook) is sae else widget.saes
    return widget.snippet("{saes}[{hook}]", saes=Ref(holder, "saes", "the SAEs this widget uses"), hook=hook)
