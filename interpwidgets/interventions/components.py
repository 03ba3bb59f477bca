"""`Component`: what an intervention acts on, and how to read and write that part of an activation.

A component is a hook point plus an optional head, neuron, set of positions or residual direction:

    Component("blocks.1.attn.hook_z", head=2)              # head L1H2's output (all positions)
    Component("blocks.3.mlp.hook_post", neuron=7, positions=(5,))
    parse_component("L1H2"), parse_component("mlp3"), parse_component("resid_pre2@5")

The short names are the one grammar for places in the model, shared by patching sites, interventions, circuit
nodes and SAE keys: `Component.label` prints the canonical form, `parse_component` reads it back (aliases
accepted: `resid2` = `resid_post2`, a hook name, a (layer, head) pair), and `parse_node` also reads a circuit
node id, `<place>/<feature>@<position>` or `<place>/error@<position>` (e.g. "resid_post2/153@7").

Activation layouts follow TransformerLens: [batch, pos, d] for residual-like hooks,
[batch, pos, head, d_head] for hook_q/k/v/z, [batch, head, query_pos, key_pos] for hook_pattern.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from interpwidgets.interventions.hooks import check_hook_name

RowFn = Callable[[torch.Tensor], torch.Tensor]
"""An edit: the activation in, the edited activation out (same shape)."""

_LAYER = re.compile(r"^blocks\.(\d+)\.")
_HEAD_VECTOR = re.compile(r"\.attn\.hook_(q|k|v|z|result|q_input|k_input|v_input)$|\.hook_(q|k|v)_input$")
_HEAD_SQUARE = re.compile(r"\.attn\.hook_(pattern|attn_scores)$")
_SHORT_FORMS = (
    (re.compile(r"^l(\d+)h(\d+)(?:\.(z|q|k|v|pattern))?$"), lambda m: Component(
        f"blocks.{m[1]}.attn.hook_{m[3] or 'z'}", head=int(m[2]))),
    (re.compile(r"^l(\d+)n(\d+)$"), lambda m: Component(f"blocks.{m[1]}.mlp.hook_post", neuron=int(m[2]))),
    (re.compile(r"^(mlp|attn)(\d+)$"), lambda m: Component(f"blocks.{m[2]}.hook_{m[1]}_out")),
    (re.compile(r"^(resid_pre|resid_mid|resid_post)(\d+)$"), lambda m: Component(f"blocks.{m[2]}.hook_{m[1]}")),
    (re.compile(r"^resid(\d+)$"), lambda m: Component(f"blocks.{m[1]}.hook_resid_post")),  # alias of resid_postL
    (re.compile(r"^(embed|pos_embed)$"), lambda m: Component(f"hook_{m[1]}")),
)
SHORT_NAME_HELP = (
    "L1H2 (head), L1H2.q (its query), L1N7 (MLP neuron), mlp1, attn1, resid_pre1, resid_mid1, resid_post1, embed, "
    "each optionally @positions (resid_pre1@5 or @3,4)"
)
_NODE_ID = re.compile(r"^(?P<place>[^/@]+?)(?:/(?P<unit>\d+|error))?(?:@(?P<positions>-?\d+(?:,-?\d+)*))?$")


_KV_HOOK = re.compile(r"\.attn\.hook_(k|v|rot_k)$")


def layer_of(hook_name: str) -> int | None:
    """The block index in a TransformerLens hook name ("blocks.3.hook_resid_post" -> 3), None outside the blocks."""
    match = _LAYER.match(hook_name)
    return int(match[1]) if match else None


def kv_heads(model) -> int:
    """The number of key/value heads: fewer than the query heads on grouped-query models (Llama, Mistral,
    Gemma, Qwen), where query head h reads key/value head h // kv_group(model)."""
    return getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads


def kv_group(model) -> int:
    """How many query heads share one key/value head (1 without grouped-query attention)."""
    return model.cfg.n_heads // kv_heads(model)


def heads_at(model, hook_name: str) -> int:
    """The size of the head axis at `hook_name`: key/value heads for hook_k / hook_v, query heads elsewhere."""
    return kv_heads(model) if _KV_HOOK.search(hook_name) else model.cfg.n_heads


def axes_of(hook_name: str) -> tuple[int, int | None]:
    """(position axis, head axis or None) of the activation at `hook_name`."""
    if _HEAD_SQUARE.search(hook_name):
        return 2, 1
    if _HEAD_VECTOR.search(hook_name):
        return 1, 2
    return 1, None


@dataclass(frozen=True)
class Component:
    """A part of one hook point's activation.

    hook_name: a TransformerLens hook name, e.g. "blocks.1.attn.hook_z".
    head: one head (hooks with a head axis only); neuron: one unit of the last axis;
    positions: token positions (negative ones count from the end; None = all);
    direction: a [d] vector: the component is the activation's projection onto it (for
    residual-direction ablation); compared by identity, not value.
    """

    hook_name: str
    head: int | None = None
    neuron: int | None = None
    positions: tuple[int, ...] | None = None
    direction: torch.Tensor | None = field(default=None, compare=False)

    @property
    def layer(self) -> int | None:
        """The block index of the hook point (None for hooks outside the blocks)."""
        return layer_of(self.hook_name)

    @property
    def label(self) -> str:
        """A short name: "L1H2", "L1H2.q", "L3N7", "mlp3", "resid_pre2@5", or the hook name."""
        layer, name = self.layer, self.hook_name
        leaf = name.rsplit(".", 1)[-1].removeprefix("hook_")
        if self.head is not None and axes_of(name)[1] is not None:
            text = f"L{layer}H{self.head}" + ("" if leaf == "z" else f".{leaf}")
        elif self.neuron is not None and name.endswith("mlp.hook_post"):
            text = f"L{layer}N{self.neuron}"
        elif layer is not None and leaf in ("mlp_out", "attn_out"):
            text = f"{leaf[:-4]}{layer}"
        elif layer is not None and leaf in ("resid_pre", "resid_mid", "resid_post"):
            text = f"{leaf}{layer}"
        else:
            text = name + (f"[{self.neuron}]" if self.neuron is not None else "")
        if self.positions is not None:
            text += "@" + ",".join(str(p) for p in self.positions)
        return text + ("+dir" if self.direction is not None else "")

    def at(self, positions: int | Sequence[int] | None) -> "Component":
        """The same component restricted to `positions` (None: all positions)."""
        return replace(self, positions=_as_positions(positions))

    def index(self, act: torch.Tensor) -> tuple:
        """The index into `act` (this hook's activation) that selects the component."""
        position_axis, head_axis = axes_of(self.hook_name)
        index: list = [slice(None)] * act.ndim
        if self.positions is not None:
            seq = act.shape[position_axis]
            bad = [p for p in self.positions if not -seq <= p < seq]
            if bad:
                raise IndexError(f"{self.label}: positions {bad} are out of range for a sequence of {seq} tokens.")
            index[position_axis] = list(self.positions)
        if self.head is not None:
            index[head_axis] = self.head
        if self.neuron is not None:
            if not 0 <= self.neuron < act.shape[-1]:
                raise IndexError(f"{self.label}: neuron {self.neuron} is out of range (the hook has {act.shape[-1]} units).")
            index[-1] = self.neuron
        return tuple(index)

    def select(self, act: torch.Tensor) -> torch.Tensor:
        """The component's part of `act` (for a direction: the [...] projection coefficients)."""
        part = act[self.index(act)]
        return part @ self._unit(part) if self.direction is not None else part

    def write(self, act: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """`act` with the component's part set to `source`'s (in place; `source` broadcasts to `act`)."""
        index = self.index(act)
        value = source.to(act.dtype).expand_as(act)[index]
        if self.direction is not None:
            part = act[index]
            unit = self._unit(part)
            value = part + ((value - part) @ unit)[..., None] * unit
        act[index] = value
        return act

    def add(self, act: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        """`act` with `vector` (broadcast over the last axis) added to the component's part (in place)."""
        index = self.index(act)
        act[index] = act[index] + vector.to(act.dtype)
        return act

    def _unit(self, part: torch.Tensor) -> torch.Tensor:
        direction = self.direction.to(part.device, part.dtype)
        if direction.shape != part.shape[-1:]:
            raise ValueError(
                f"{self.label}: the direction has shape {tuple(direction.shape)} but the activation's last axis has "
                f"{part.shape[-1]} units; pass a [{part.shape[-1]}] vector."
            )
        return direction / direction.norm()

    def check(self, model) -> None:
        """Raise a ValueError naming the problem if this component does not exist on `model`."""
        n_layers, n_heads = model.cfg.n_layers, heads_at(model, self.hook_name)
        if self.layer is not None and self.layer >= n_layers:
            raise ValueError(
                f"{self.label}: layer {self.layer} is out of range; the model has {n_layers} layers (0-{n_layers - 1})."
            )
        check_hook_name(model, self.hook_name)
        if self.head is not None:
            if axes_of(self.hook_name)[1] is None:
                raise ValueError(
                    f"{self.hook_name} has no head axis, so head={self.head} cannot be selected; use a per-head hook "
                    "such as blocks.L.attn.hook_z / hook_q / hook_k / hook_v / hook_pattern."
                )
            if not 0 <= self.head < n_heads:
                what = "key/value heads" if n_heads != model.cfg.n_heads else "heads"
                raise ValueError(
                    f"{self.label}: head {self.head} is out of range; the model has {n_heads} {what} (0-{n_heads - 1})."
                )
        if self.direction is not None and self.neuron is not None:
            raise ValueError(f"{self.label}: give a neuron or a direction, not both.")

    def edits(self, model, fn: RowFn) -> list[tuple[str, RowFn]]:
        """(hook name, edit) pairs that apply `fn` (activation -> edited activation, may edit in place).

        On a TransformerBridge `hook_resid_mid` is the MLP branch's input (ln2's input), so editing it
        alone would leave the skip connection unpatched; the change is then carried into
        `hook_resid_post` of the same block too, so the whole residual stream changes.
        """
        if not _is_branch_only_resid_mid(model, self.hook_name):
            return [(self.hook_name, fn)]
        delta: list[torch.Tensor] = []

        def into_mlp_branch(act: torch.Tensor) -> torch.Tensor:
            new = fn(act.clone())
            delta[:] = [new - act]
            return new

        def into_skip(act: torch.Tensor) -> torch.Tensor:
            if not delta:
                raise RuntimeError(f"{self.hook_name} did not fire before hook_resid_post in this forward.")
            return act + delta.pop()

        return [(self.hook_name, into_mlp_branch), (f"blocks.{self.layer}.hook_resid_post", into_skip)]


def _is_branch_only_resid_mid(model, hook_name: str) -> bool:
    """True when the bridge's `blocks.L.hook_resid_mid` fires on a branch input, not on the residual."""
    if not hook_name.endswith(".hook_resid_mid") or layer_of(hook_name) is None:
        return False
    block = model.blocks[layer_of(hook_name)]
    return "." in getattr(block, "hook_aliases", {}).get("hook_resid_mid", "")


def _as_positions(positions: int | Sequence[int] | None) -> tuple[int, ...] | None:
    if positions is None:
        return None
    if isinstance(positions, int):
        return (positions,)
    if isinstance(positions, torch.Tensor):
        positions = positions.tolist()
    values = tuple(positions)
    if not values or not all(isinstance(p, int) for p in values):
        raise ValueError(f"positions must be an int or a non-empty list of ints, got {positions!r}.")
    return values


def parse_component(spec: "Component | str | tuple[int, int]", model=None) -> Component:
    """A Component from a short name ("L1H2", "L1H2.q", "L3N7", "mlp3", "attn3", "resid_pre2", "embed"),
    a hook name, a (layer, head) pair, or a Component. With `model`, it is also checked against it."""
    if isinstance(spec, Component):
        component = spec
    elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, int) for x in spec):
        component = Component(f"blocks.{spec[0]}.attn.hook_z", head=spec[1])
    elif isinstance(spec, str):
        component = _parse_text(spec.strip(), model)
    else:
        raise TypeError(
            f"Cannot read a component from {spec!r}; give a short name ({SHORT_NAME_HELP}), a hook name, a "
            "(layer, head) pair or a Component."
        )
    if model is not None:
        component.check(model)
    return component


def parse_node(spec: str, model=None) -> tuple[Component, int | str | None]:
    """(the place at its positions, the unit: a feature index, "error" or None) of a circuit node id such as
    "resid_post2/153@7", "attn1/error@3" or a plain short name ("mlp3@5")."""
    match = _NODE_ID.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"Cannot read a node from {spec!r}; use <place>/<feature>@<position>, e.g. 'resid_post2/153@7'.")
    component = parse_component(spec, model)
    unit = match["unit"]
    return component, (int(unit) if unit is not None and unit != "error" else unit)


def _parse_text(text: str, model) -> Component:
    match = _NODE_ID.match(text)
    if match and (match["unit"] is not None or match["positions"] is not None):
        positions = tuple(int(p) for p in match["positions"].split(",")) if match["positions"] else None
        return replace(_parse_text(match["place"], model), positions=positions)
    for pattern, build in _SHORT_FORMS:
        match = pattern.match(text.lower())
        if match:
            return build(match)
    if model is None or text in model.hook_dict or _LAYER.match(text):
        return Component(text)
    known = [f"L{L}H{H}" for L in range(model.cfg.n_layers) for H in range(model.cfg.n_heads)]
    known += [f"{kind}{L}" for kind in ("mlp", "attn", "resid_pre", "resid_mid", "resid_post") for L in range(model.cfg.n_layers)]
    close = difflib.get_close_matches(text, known + list(model.hook_dict), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown component {text!r}.{hint} Use a hook name or a short name: {SHORT_NAME_HELP}.")


def parse_components(specs, model, positions: int | Sequence[int] | None = None) -> list[Component]:
    """Components from one spec or a list of specs, checked against `model`; `positions` applies to those without."""
    if isinstance(specs, (str, Component)) or (isinstance(specs, tuple) and all(isinstance(x, int) for x in specs)):
        specs = [specs]
    components = [parse_component(s, model) for s in specs]
    if not components:
        raise ValueError("No components given; pass at least one (e.g. 'L1H2' or 'mlp0').")
    if positions is not None:
        components = [c if c.positions is not None else c.at(positions) for c in components]
    return components
