"""`Steering`: sliders that add SAE feature directions (or any direction) to the model, and the text it writes.

Each row is a direction at a hook: a feature's decoder row `W_dec[f]` at its dictionary's output hook, or a
vector given by the user. The browser writes the sliders' `scales` and the generation settings as traits
(checked once, by the trait validators, against the read-only `limits`) and then sends the verb `generate`;
the kernel generates the continuation with and without `sum(scale * direction)` added
(`iw.interventions.generate`: greedy, or sampled with a fixed seed, so it is reproducible) and answers with
both. A slider ends where its direction adds twice the typical norm of the hook's activation on the prompt
(`iw.interventions.steering_alpha`). The view has a prompt box (`prompting.py`): a new prompt gets new slider
ends and a new generation; the baseline generations are cached per settings (the last `BASELINE_CACHE`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from traitlets import Enum, Float, Int, List, TraitError, Unicode, validate
from traitlets import Dict as DictTrait

from interpwidgets.interventions import Component, combine, generate, steer, steering_alpha
from interpwidgets.models.tokens import token_strings, token_text
from interpwidgets.sae.corpus_stats import FeatureStats
from interpwidgets.sae.features import check_feature, feature_activations
from interpwidgets.sae.labels import feature_label
from interpwidgets.sae.sets import SAESet
from interpwidgets.widgets.base import STATIC, InterpWidget, handles
from interpwidgets.widgets.density import corpus_density, prompt_density, stats_by_hook, text_start
from interpwidgets.widgets.dictionary_choice import DictionaryList
from interpwidgets.widgets.feature_params import get_feature, get_hook
from interpwidgets.widgets.history import Ref, Snippet, dictionary
from interpwidgets.widgets.messages import RequestError, check_keys, get_int
from interpwidgets.widgets.prompting import PromptBox, check_prompt
from interpwidgets.widgets.selection import Selection
from interpwidgets.widgets.static_html import esc, frame

MAX_ROWS = 8
LIMITS = {"max_new_tokens": (1, 64), "temperature": (0.05, 5.0), "seed": (0, 2**31 - 1)}
"""The range of each numeric generation setting (inclusive); the browser reads them from the `limits` trait."""
SAMPLINGS = ("greedy", "sample")
SETTINGS = ("max_new_tokens", "sampling", "temperature", "seed")  # the order of a settings tuple
SLIDER_RATIO = 2.0  # at a slider's end the direction adds this many times the activation's typical norm
BASELINE_CACHE = 16  # baseline generations kept (least recently used dropped): one per settings tuple


@dataclass
class Direction:
    """A steering direction: `vector [d]` added at `hook`, scaled by a slider in [-limit, limit]."""

    label: str
    hook: str
    vector: torch.Tensor
    limit: float
    source: str | None = None  # the dictionary's input hook for a feature row
    feature: int | None = None
    given: Any = None  # the vector as the user passed it (named in recorded code)


@dataclass(frozen=True)
class Generation:
    """One generation as the widget shows it: how it was made, and the ids written without and with steering."""

    description: str
    baseline: list[int]
    steered: list[int]


class Steering(PromptBox, DictionaryList, InterpWidget):
    """Steer generation from `prompt` along features of `saes` (an SAE, list, dict or `SAESet`) or directions.

    Steering(model, saes, "When Mary and John went to the store,", features=[("blocks.1.hook_resid_post", 7)])
    Steering(model, saes, prompt, directions={"names": ("blocks.2.hook_resid_post", vector)})

    features: (input hook, feature) pairs, or feature indices of the first dictionary. More can be added
    in the widget. Sampling is greedy by default; "sample" draws at `temperature` with `seed`. stats:
    `iw.sae.feature_stats` results whose corpus density marks dense features (else density on the prompt).
    The prompt box (or `set_prompt(text)`) steers from another prompt: the sliders stay (their ends measured
    on the new prompt, scales clipped to them) and both continuations are generated again.
    """

    _esm = STATIC / "steering.js"
    _css = STATIC / "steering.css"
    _front_end_writable = frozenset({"scales", *SETTINGS})

    tokens = List(Unicode(), read_only=True).tag(sync=True)
    rows = List(DictTrait(), read_only=True).tag(sync=True)
    limits = DictTrait(read_only=True).tag(sync=True)
    samplings = List(Unicode(), read_only=True).tag(sync=True)
    scales = List(Float()).tag(sync=True)
    max_new_tokens = Int(20).tag(sync=True)
    sampling = Enum(SAMPLINGS, default_value="greedy").tag(sync=True)
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
        stats: FeatureStats | Sequence[FeatureStats] | None = None,
        selection: Selection | None = None,
    ) -> None:
        self.model = model
        self._given_saes = saes
        self.saes = SAESet.of(saes)
        self._stats = stats_by_hook(self.saes, stats)
        self._prompt_acts: dict[str, torch.Tensor] = {}
        checked = check_prompt(model, prompt)
        self._prompt = prompt
        self._tokens = checked.tokens
        self._directions: list[Direction] = []
        self._baseline: OrderedDict[tuple, list[int]] = OrderedDict()  # settings -> baseline ids, least recent first
        super().__init__(selection=selection)
        self.set_trait("tokens", token_strings(model, self._tokens[0].tolist()))
        self.set_trait("limits", {name: list(bounds) for name, bounds in LIMITS.items()})
        self.set_trait("samplings", list(SAMPLINGS))
        self._publish_dictionaries()
        self.max_new_tokens, self.sampling, self.temperature, self.seed = max_new_tokens, sampling, temperature, seed
        for spec in features:
            hook, feature = (next(iter(self.saes)), spec) if isinstance(spec, int) else spec
            self.add_feature(hook, feature)
        for label, (hook, vector) in (directions or {}).items():
            self.add_direction(label, hook, vector)
        self._shown = self._generation(list(self.scales), self._settings({}))
        self._init_prompt(model, prompt, checked.warning)

    def _swap_prompt(self, text: str, tokens: torch.Tensor) -> Snippet:
        """Steers from the new prompt: its tokens, the sliders' ends measured on it (scales clipped to them), the
        cached generations dropped and both continuations generated again; returns the calls that make them."""
        self._prompt, self._tokens = text, tokens
        self._baseline.clear()
        self._prompt_acts.clear()
        self.set_trait("tokens", token_strings(self.model, tokens[0].tolist()))
        for direction in self._directions:
            direction.limit = self._limit(direction.hook, direction.vector)
        self._sync_rows([max(-d.limit, min(d.limit, s)) for d, s in zip(self._directions, self.scales)])
        scales, settings = list(self.scales), self._settings({})
        self._shown = self._generation(scales, settings, progress=False)
        return self._generation_code(scales, settings)

    # ---- Python API
    @property
    def directions(self) -> list[Direction]:
        return list(self._directions)

    def add_feature(self, hook: str, feature: int) -> None:
        """Adds a slider for feature `feature` of the dictionary reading `hook`."""
        if hook not in self.saes:
            raise ValueError(f"no dictionary reads {hook!r}; choose one of {list(self.saes)}.")
        sae = self.saes[hook]
        check_feature(feature, sae.cfg.d_sae)
        vector = sae.W_dec[feature].detach()
        self._add(Direction(f"{hook} #{feature}", sae.cfg.output_hook, vector, self._limit(sae.cfg.output_hook, vector), hook, feature))

    def add_direction(self, label: str, hook: str, vector: torch.Tensor) -> None:
        """Adds a slider for `vector [d]` (finite, nonzero, as wide as the activation) added at `hook`."""
        given, vector = vector, torch.as_tensor(vector).detach().float()
        self._add(Direction(str(label), hook, vector, self._limit(hook, vector), given=given))

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
        shown = self._generation(list(self.scales if scales is None else scales), self._settings(settings))
        return token_text(self.model, shown.baseline), token_text(self.model, shown.steered)

    def continuations(self, scales: Sequence[float] | None = None, **settings: Any) -> tuple[list[str], list[str]]:
        """Like `generate`, as lists of tokens (what the widget shows)."""
        shown = self._generation(list(self.scales if scales is None else scales), self._settings(settings))
        return token_strings(self.model, shown.baseline), token_strings(self.model, shown.steered)

    # ---- traits: the one check of what the browser (or Python) sets
    @validate("scales")
    def _check_scales(self, proposal: dict[str, Any]) -> list[float]:
        scales = list(proposal["value"])
        if len(scales) != len(self._directions):
            raise TraitError(f"scales needs one value per slider ({len(self._directions)}), got {len(scales)}")
        for scale, direction in zip(scales, self._directions):
            if not abs(scale) <= direction.limit:
                raise TraitError(f"scale of {direction.label} must lie in [-{direction.limit:g}, {direction.limit:g}], got {scale}")
        return scales

    @validate(*LIMITS)
    def _check_setting(self, proposal: dict[str, Any]) -> int | float:
        name, value = proposal["trait"].name, proposal["value"]
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise TraitError(f"{name} must be between {low} and {high}, got {value}")
        return value

    # ---- requests from the front end
    @handles("generate")
    def _generate_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """{} -> the continuations without and with steering for the `scales` and settings traits."""
        check_keys(params, ())
        scales, settings = list(self.scales), self._settings({})
        self._shown = self._generation(scales, settings, progress=False)
        step = self.record(f"generate: {self._shown.description}", self._generation_code(scales, settings),
                           {"baseline": self._shown.baseline, "steered": self._shown.steered})
        return {
            "code": step.snippet,
            "description": self._shown.description,
            "baseline": token_strings(self.model, self._shown.baseline),
            "steered": token_strings(self.model, self._shown.steered),
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

    # ---- copy as code: `iw.interventions.generate` with the steering the widget holds
    def _generation_code(self, scales: list[float], settings: tuple[int, str, float, int]) -> Snippet:
        """`baseline = ...` and `steered = ...`: the generate calls whose ids `_generation` shows."""
        max_new, sampling, temperature, seed = settings
        model = Ref(self.model, "model", "the model this widget runs")
        if isinstance(self._prompt, str):
            tokens = self.snippet("{model}.to_tokens({prompt})", model=model, prompt=self._prompt)
        else:
            tokens = self.snippet("{ids}", ids=[int(i) for i in self._tokens[0].tolist()])
        options = self.snippet("max_new_tokens={n}, temperature={t}, seed={seed}", n=max_new,
                               t=0.0 if sampling == "greedy" else temperature, seed=seed)
        baseline = self.snippet("tokens = {tokens}\nbaseline = iw.interventions.generate({model}, tokens, {options})",
                                tokens=tokens, model=model, options=options)
        steers = [self._steer_code(i, scale) for i, scale in enumerate(scales) if scale != 0]
        if not steers:
            return self.snippet("{baseline}\nsteered = baseline", baseline=baseline)
        slots = {f"s{i}": steer for i, steer in enumerate(steers)}
        inner = ", ".join(f"{{s{i}}}" for i in range(len(steers)))
        steering = self.snippet(inner if len(steers) == 1 else f"iw.interventions.combine({inner})", **slots)
        return self.snippet("{baseline}\nsteered = iw.interventions.generate({model}, tokens, intervention={steering}, {options})",
                            baseline=baseline, model=model, steering=steering, options=options)

    def _steer_code(self, index: int, scale: float) -> Snippet:
        direction = self._directions[index]
        if direction.feature is not None:
            vector = self.snippet("{sae}.W_dec[{feature}]", sae=dictionary(self, direction.source), feature=direction.feature)
        else:
            given = direction.given
            same = isinstance(given, torch.Tensor) and given.dtype == torch.float32 and not given.requires_grad
            vector = self.snippet("{vector}", vector=Ref(given if same else direction.vector, f"directions[{index}].vector",
                                                         f"the direction of slider {direction.label!r}"))
        return self.snippet("iw.interventions.steer({model}, {hook}, {vector}, alpha={scale})",
                            model=Ref(self.model, "model", "the model this widget runs"), hook=direction.hook,
                            vector=vector, scale=scale)

    # ---- internals
    def _add(self, direction: Direction) -> None:
        if len(self._directions) >= MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} sliders.")
        self._directions.append(direction)
        self._sync_rows([*self.scales, 0.0])

    def density(self, hook: str, feature: int) -> dict[str, Any]:
        """How often `feature` of the dictionary reading `hook` fires: over its corpus statistics if given, else
        over the prompt (one forward pass per dictionary, kept)."""
        if hook in self._stats:
            return corpus_density(self._stats[hook], feature)
        if hook not in self._prompt_acts:
            self._prompt_acts[hook] = feature_activations(self.model, self.saes[hook], self._tokens[0])[hook]
        return prompt_density(self._prompt_acts[hook], feature, text_start(self.model, self._tokens[0]))

    def _clerp(self, direction: Direction) -> str | None:
        """The label of a feature row's feature; None for a user's direction or an unlabelled feature."""
        return None if direction.feature is None else feature_label(self.saes[direction.source], direction.feature)

    def _sync_rows(self, scales: list[float]) -> None:
        rows = [{"label": d.label, "hook": d.hook, "limit": d.limit, "feature": d.feature, "source": d.source,
                 "clerp": self._clerp(d),
                 "layer": Component(d.source or d.hook).layer,
                 "firing": None if d.feature is None else self.density(d.source, d.feature)} for d in self._directions]
        with self.hold_trait_notifications():
            self.set_trait("rows", rows)
            self.scales = scales

    def _limit(self, hook: str, vector: torch.Tensor) -> float:
        """The slider's end: the scale at which `vector` adds SLIDER_RATIO times the typical norm of `hook`'s
        activation on the prompt (3 significant digits, at least 1e-3)."""
        alpha = steering_alpha(self.model, self._tokens, hook, vector, ratio=SLIDER_RATIO)
        return float(f"{max(alpha, 1e-3):.3g}")

    def _settings(self, overrides: dict[str, Any]) -> tuple[int, str, float, int]:
        unknown = set(overrides) - set(SETTINGS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}; the settings are {list(SETTINGS)}")
        return tuple(overrides.get(name, getattr(self, name)) for name in SETTINGS)

    def _generation(self, scales: list[float], settings: tuple[int, str, float, int], progress: bool | None = None) -> Generation:
        """Both continuations for `scales` and `settings`; the baseline is generated once per settings (the
        `BASELINE_CACHE` most recently used are kept)."""
        max_new, sampling, temperature, seed = settings
        options = {"max_new_tokens": max_new, "temperature": 0.0 if sampling == "greedy" else temperature,
                   "seed": seed, "progress": progress}
        if settings not in self._baseline:
            self._baseline[settings] = generate(self.model, self._tokens, **options)
            while len(self._baseline) > BASELINE_CACHE:
                self._baseline.popitem(last=False)
        self._baseline.move_to_end(settings)
        baseline = self._baseline[settings]
        active = [(d, s) for d, s in zip(self._directions, scales) if s != 0]
        steered = baseline
        if active:
            edits = combine(*(steer(self.model, d.hook, d.vector, alpha=s) for d, s in active))
            steered = generate(self.model, self._tokens, intervention=edits, **options)
        decoding = "greedy" if sampling == "greedy" else f"sampled at T={temperature:g}, seed {seed}"
        steering = " + ".join(f"{d.label} \u00d7 {s:g}" for d, s in active) or "no steering (all scales 0)"
        return Generation(f"{steering} \u00b7 {decoding}", baseline, steered)

    # ---- static preview: the generation last computed (at construction, or for the browser), never a new one
    def _static_html(self) -> str:
        shown = self._shown
        prompt = token_text(self.model, self._tokens[0].tolist(), skip_special_tokens=True)
        sliders = "".join(f"<li>{esc(' '.join(filter(None, (d.label, self._clerp(d)))))} (scale \u00b1{d.limit:g})</li>"
                          for d in self._directions) or "<li>none</li>"
        body = (
            f"<div><b>prompt</b> {esc(prompt)}</div><ul style='margin:4px 0'>{sliders}</ul>"
            f"<div>{esc(shown.description)}</div>"
            f'<div style="display:grid;grid-template-columns:1fr 1fr;gap:12px;font-family:monospace">'
            f"<div><b>without steering</b><br>{esc(token_text(self.model, shown.baseline))}</div>"
            f"<div><b>steered</b><br>{esc(token_text(self.model, shown.steered))}</div></div>"
        )
        return frame("Steering", body)
