"""`Steering`: sliders that add SAE feature directions (or any direction) to the model, and the text it writes.

Each row is a direction at a hook: a feature's decoder row `W_dec[f]` at its dictionary's output hook, or a
vector given by the user. The browser sends the sliders' scales; the kernel generates the continuation
with and without `sum(scale * direction)` added (greedy, or sampled with a fixed seed, so it is
reproducible) and answers with both texts. Slider ranges run to twice the typical norm of the hook's
activation on the prompt, in units of the direction's norm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from traitlets import Enum, Float, Int, List, TraitError, Unicode, validate
from traitlets import Dict as DictTrait

from interpwidgets.interventions import combine, steer
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.dictionary_choice import DictionaryList
from interpwidgets.widgets.feature_data import check_feature, device_of, dictionaries, output_hook
from interpwidgets.widgets.feature_params import get_feature, get_float, get_hook
from interpwidgets.widgets.generation import generate
from interpwidgets.widgets.messages import RequestError, check_keys, get_choice, get_int
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import esc, frame
from interpwidgets.widgets.tokens import prompt_tokens, token_strings, token_text

MAX_NEW_TOKENS = 64
MAX_ROWS = 8
MAX_SEED = 2**31 - 1
SAMPLING = ("greedy", "sample")
GENERATION_SETTINGS = ("max_new_tokens", "sampling", "temperature", "seed")  # order of the settings tuple


@dataclass
class Direction:
    """A steering direction: `vector [d]` added at `hook`, scaled by a slider in [-limit, limit]."""

    label: str
    hook: str
    vector: torch.Tensor
    limit: float
    source: str | None = None  # the dictionary's input hook for a feature row
    feature: int | None = None


class Steering(DictionaryList, InterpWidget):
    """Steer generation from `prompt` along features of `saes` (an SAE, list, dict or `SAESet`) or directions.

    Steering(model, saes, "When Mary and John went to the store,", features=[("blocks.1.hook_resid_post", 7)])
    Steering(model, saes, prompt, directions={"names": ("blocks.2.hook_resid_post", vector)})

    features: (input hook, feature) pairs, or feature indices of the first dictionary. More can be added
    in the widget. Sampling is greedy by default; "sample" draws at `temperature` with `seed`.
    """

    _esm = STATIC / "steering.js"
    _css = STATIC / "steering.css"
    _front_end_writable = frozenset({"scales", "max_new_tokens", "sampling", "temperature", "seed"})

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    rows = List(DictTrait(), read_only=True).tag(sync=True)
    scales = List(Float()).tag(sync=True)
    max_new_tokens = Int(20).tag(sync=True)
    sampling = Enum(SAMPLING, default_value="greedy").tag(sync=True)
    temperature = Float(1.0).tag(sync=True)
    seed = Int(0).tag(sync=True)

    def __init__(
        self,
        model: Any,
        saes: Any,
        prompt: str | torch.Tensor | Sequence[int],
        *,
        features: Sequence[tuple[str, int] | int] = (),
        directions: Mapping[str, tuple[str, torch.Tensor]] | None = None,
        max_new_tokens: int = 20,
        sampling: str = "greedy",
        temperature: float = 1.0,
        seed: int = 0,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self.saes = dictionaries(saes)
        self._tokens = prompt_tokens(model, prompt)
        self._norms: dict[str, tuple[float, int]] = {}
        self._directions: list[Direction] = []
        self._baseline: dict[tuple, list[int]] = {}
        super().__init__(selection=selection)
        self.set_trait("tokens", token_strings(model, self._tokens[0].tolist()))
        self._publish_dictionaries()
        self.max_new_tokens, self.sampling, self.temperature, self.seed = max_new_tokens, sampling, temperature, seed
        for spec in features:
            hook, feature = (next(iter(self.saes)), spec) if isinstance(spec, int) else spec
            self.add_feature(hook, feature)
        for label, (hook, vector) in (directions or {}).items():
            self.add_direction(label, hook, vector)

    # ---- Python API
    @property
    def directions(self) -> list[Direction]:
        return list(self._directions)

    def add_feature(self, hook: str, feature: int) -> None:
        """Adds a slider for feature `feature` of the dictionary reading `hook`."""
        if hook not in self.saes:
            raise ValueError(f"no dictionary reads {hook!r}; choose one of {list(self.saes)}.")
        sae = self.saes[hook]
        check_feature(sae, feature)
        vector = sae.W_dec[feature].detach()
        self._add(Direction(f"{hook} #{feature}", output_hook(sae), vector, self._limit(output_hook(sae), vector), hook, feature))

    def add_direction(self, label: str, hook: str, vector: torch.Tensor) -> None:
        """Adds a slider for `vector [d]` added at `hook`."""
        vector = torch.as_tensor(vector).detach().float()
        if vector.ndim != 1 or not torch.isfinite(vector).all() or float(vector.norm()) == 0:
            raise ValueError(f"direction {label!r} must be a finite, nonzero vector [d], got shape {tuple(vector.shape)}.")
        self._add(Direction(str(label), hook, vector, self._limit(hook, vector)))

    def remove(self, index: int) -> None:
        """Removes the `index`-th slider."""
        if not 0 <= index < len(self._directions):
            raise IndexError(f"there are {len(self._directions)} sliders; got index {index}.")
        del self._directions[index]
        scales = list(self.scales)
        del scales[index]
        self._sync_rows(scales)

    def generate(self, scales: Sequence[float] | None = None, **settings: Any) -> tuple[str, str]:
        """(baseline continuation, steered continuation) as text, for `scales` (default: the sliders').

        settings: max_new_tokens, sampling, temperature, seed (default: the widget's).
        """
        baseline, steered = self._requested(scales, settings)
        return token_text(self.model, baseline), token_text(self.model, steered)

    def continuations(self, scales: Sequence[float] | None = None, **settings: Any) -> tuple[list[str], list[str]]:
        """Like `generate`, as lists of tokens (what the widget shows)."""
        baseline, steered = self._requested(scales, settings)
        return token_strings(self.model, baseline), token_strings(self.model, steered)

    # ---- traits
    @validate("scales")
    def _check_scales(self, proposal: dict[str, Any]) -> list[float]:
        scales = list(proposal["value"])
        if len(scales) != len(self._directions):
            raise TraitError(f"scales needs one value per slider ({len(self._directions)}), got {len(scales)}")
        for scale, direction in zip(scales, self._directions):
            if not abs(scale) <= direction.limit:
                raise TraitError(f"scale of {direction.label} must lie in [-{direction.limit:g}, {direction.limit:g}], got {scale}")
        return scales

    @validate("max_new_tokens")
    def _check_max_new(self, proposal: dict[str, Any]) -> int:
        if not 1 <= proposal["value"] <= MAX_NEW_TOKENS:
            raise TraitError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}, got {proposal['value']}")
        return proposal["value"]

    @validate("temperature")
    def _check_temperature(self, proposal: dict[str, Any]) -> float:
        if not 0.05 <= proposal["value"] <= 5:
            raise TraitError(f"temperature must be between 0.05 and 5, got {proposal['value']}")
        return proposal["value"]

    @validate("seed")
    def _check_seed(self, proposal: dict[str, Any]) -> int:
        if not 0 <= proposal["value"] <= MAX_SEED:
            raise TraitError(f"seed must be between 0 and {MAX_SEED}, got {proposal['value']}")
        return proposal["value"]

    # ---- requests from the front end
    @handles("generate")
    def _generate(self, params: dict[str, Any]) -> dict[str, Any]:
        """{scales, max_new_tokens, sampling, temperature, seed} -> the generated tokens without and with steering."""
        check_keys(params, {"scales", *GENERATION_SETTINGS})
        scales = params.get("scales")
        if not isinstance(scales, list) or len(scales) != len(self._directions):
            raise RequestError(f"scales must be a list of {len(self._directions)} numbers (one per slider)")
        checked = [get_float({"scale": s}, "scale", -d.limit, d.limit) for s, d in zip(scales, self._directions)]
        settings = (
            get_int(params, "max_new_tokens", 1, MAX_NEW_TOKENS),
            get_choice(params, "sampling", SAMPLING),
            get_float(params, "temperature", 0.05, 5.0),
            get_int(params, "seed", 0, MAX_SEED),
        )
        baseline, steered = self._continuations(checked, settings)
        active = [f"{d.label} \u00d7 {s:g}" for d, s in zip(self._directions, checked) if s != 0]
        _, sampling, temperature, seed = settings
        decoding = "greedy" if sampling == "greedy" else f"sampled at T={temperature:g}, seed {seed}"
        return {
            "description": f"{' + '.join(active) or 'no steering (all scales 0)'} \u00b7 {decoding}",
            "baseline": token_strings(self.model, baseline),
            "steered": token_strings(self.model, steered),
        }

    @handles("add")
    def _add_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{hook, feature} -> adds a slider for that feature."""
        check_keys(params, {"hook", "feature"})
        hook = get_hook(params, list(self.saes))
        feature = get_feature(params, int(self.saes[hook].cfg.d_sae))
        if len(self._directions) >= MAX_ROWS:
            raise RequestError(f"at most {MAX_ROWS} sliders; remove one first")
        if any(d.source == hook and d.feature == feature for d in self._directions):
            raise RequestError(f"{hook} #{feature} already has a slider")
        self.add_feature(hook, feature)
        return {"rows": len(self._directions)}

    @handles("remove")
    def _remove_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{index} -> removes that slider."""
        check_keys(params, {"index"})
        if not self._directions:
            raise RequestError("there are no sliders to remove")
        self.remove(get_int(params, "index", 0, len(self._directions) - 1))
        return {"rows": len(self._directions)}

    # ---- internals
    def _add(self, direction: Direction) -> None:
        if len(self._directions) >= MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} sliders.")
        self._directions.append(direction)
        self._sync_rows([*self.scales, 0.0])

    def _sync_rows(self, scales: list[float]) -> None:
        rows = [{"label": d.label, "hook": d.hook, "limit": d.limit, "feature": d.feature, "source": d.source}
                for d in self._directions]
        with self.hold_trait_notifications():
            self.set_trait("rows", rows)
            self.scales = scales

    def _limit(self, hook: str, vector: torch.Tensor) -> float:
        """Twice the mean norm of the activation at `hook` on the prompt, in units of ||vector|| (3 digits)."""
        if hook not in self._norms:
            if hook not in self.model.hook_dict:
                raise ValueError(f"{hook!r} is not a hook point of this model.")
            with torch.no_grad():
                _, cache = self.model.run_with_cache(self._tokens, names_filter=lambda name: name == hook)
            act = cache[hook].float()
            self._norms[hook] = (float(act.norm(dim=-1).mean()), act.shape[-1])
        norm, width = self._norms[hook]
        if vector.shape[0] != width:
            raise ValueError(f"the direction has {vector.shape[0]} entries but {hook} has width {width}.")
        limit = 2 * norm / max(float(vector.norm()), 1e-8)
        return float(f"{max(limit, 1e-3):.3g}")

    def _settings(self, overrides: dict[str, Any]) -> tuple[int, str, float, int]:
        unknown = set(overrides) - set(GENERATION_SETTINGS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        return tuple(overrides.get(name, getattr(self, name)) for name in GENERATION_SETTINGS)

    def _requested(self, scales: Sequence[float] | None, overrides: dict[str, Any]) -> tuple[list[int], list[int]]:
        """Token ids of both continuations for a public call: `scales` default to the sliders', settings to the widget's."""
        return self._continuations(list(self.scales if scales is None else scales), self._settings(overrides))

    def _continuations(self, scales: list[float], settings: tuple[int, str, float, int]) -> tuple[list[int], list[int]]:
        max_new, sampling, temperature, seed = settings
        temperature = 0.0 if sampling == "greedy" else temperature
        if settings not in self._baseline:
            self._baseline[settings] = generate(self.model, self._tokens, max_new, None, temperature, seed)
        baseline = self._baseline[settings]
        active = [(d, s) for d, s in zip(self._directions, scales) if s != 0]
        if not active:
            return baseline, baseline
        edits = combine(*(steer(self.model, d.hook, d.vector.to(device_of(self.model)), s) for d, s in active))
        return baseline, generate(self.model, self._tokens, max_new, edits, temperature, seed)

    # ---- static preview
    def _static_html(self) -> str:
        baseline, steered = self.generate()
        prompt = token_text(self.model, self._tokens[0].tolist(), skip_special_tokens=True)
        sliders = "".join(f"<li>{esc(d.label)}: {s:g}</li>" for d, s in zip(self._directions, self.scales)) or "<li>none</li>"
        body = (
            f"<div><b>prompt</b> {esc(prompt)}</div><ul style='margin:4px 0'>{sliders}</ul>"
            f'<div style="display:grid;grid-template-columns:1fr 1fr;gap:12px;font-family:monospace">'
            f"<div><b>without steering</b><br>{esc(baseline)}</div><div><b>steered</b><br>{esc(steered)}</div></div>"
        )
        return frame("Steering", body)
