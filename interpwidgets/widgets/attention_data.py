"""Attention patterns held in the kernel for `AttentionPatterns`, served one layer or one head at a time.

Patterns are kept as float16 on the CPU, [layers, heads, query, key]. Value-weighted patterns follow
Kobayashi et al. 2020 ("Attention is not only a weight"): the weight of key j for query i in head h is
||alpha_ij f_h(x_j)|| = alpha_ij * ||v_j^h W_O^h||, the size of what token j actually adds to token i's
residual stream through that head, not only how much it is attended to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from interpwidgets.widgets.tokens import prompt_tokens, token_strings

WEIGHTINGS = ("attention", "value")
UNITS = {"attention": "attention probability", "value": "\u2016\u03b1\u00b7v\u00b7W_O\u2016 (value-weighted)"}


@dataclass
class AttentionData:
    """tokens: [n] strings; patterns: [layers, heads, n, n]; value_norms: [layers, heads, n] (key positions) or None."""

    tokens: list[str]
    patterns: torch.Tensor
    value_norms: torch.Tensor | None = None
    _domain_max: dict[tuple[int, str], float] = field(default_factory=dict, repr=False)
    _causal: dict[int, bool] = field(default_factory=dict, repr=False)
    _thumbnails: dict[tuple[int, str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.patterns.ndim == 3:
            self.patterns = self.patterns[None]
        if self.patterns.ndim != 4 or self.patterns.shape[-1] != self.patterns.shape[-2]:
            raise ValueError(
                f"pattern must be [heads, query, key] or [layers, heads, query, key] with query = key, "
                f"got shape {tuple(self.patterns.shape)}."
            )
        n = self.patterns.shape[-1]
        if len(self.tokens) != n or n == 0:
            raise ValueError(f"got {len(self.tokens)} tokens for a pattern over {n} positions; they must match (and be > 0).")
        if not all(isinstance(token, str) for token in self.tokens):
            raise TypeError("tokens must be strings (e.g. model.to_str_tokens(prompt)).")
        patterns = self.patterns.detach().to("cpu", torch.float32)
        if not torch.isfinite(patterns).all() or (patterns < 0).any():
            raise ValueError("pattern values must be finite and non-negative (attention probabilities).")
        self.patterns = patterns.to(torch.float16)
        if self.value_norms is not None:
            norms = self.value_norms.detach().to("cpu", torch.float32)
            if norms.ndim == 2:
                norms = norms[None]
            if tuple(norms.shape) != tuple(self.patterns.shape[:3]):
                raise ValueError(
                    f"value_norms must be [layers, heads, key] = {tuple(self.patterns.shape[:3])}, got {tuple(norms.shape)}."
                )
            if not torch.isfinite(norms).all() or (norms < 0).any():
                raise ValueError("value_norms must be finite and non-negative.")
            self.value_norms = norms

    @property
    def n_layers(self) -> int:
        return self.patterns.shape[0]

    @property
    def n_heads(self) -> int:
        return self.patterns.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.patterns.shape[-1]

    @property
    def weightings(self) -> list[str]:
        return list(WEIGHTINGS) if self.value_norms is not None else ["attention"]

    def head(self, layer: int, head: int, weighting: str) -> torch.Tensor:
        """[n, n] float32 pattern of one head."""
        pattern = self.patterns[layer, head].float()
        if weighting == "value":
            pattern = pattern * self.value_norms[layer, head][None, :]
        return pattern

    def is_causal(self, layer: int) -> bool:
        """True when no query attends to a later key in this layer (the pattern then travels as its lower triangle)."""
        if layer not in self._causal:
            self._causal[layer] = bool((torch.triu(self.patterns[layer], diagonal=1) == 0).all())
        return self._causal[layer]

    def domain_max(self, layer: int, weighting: str) -> float:
        """Top of the colour scale shared by the heads of a layer: 1 for probabilities, else the layer maximum."""
        if weighting == "attention":
            return 1.0
        key = (layer, weighting)
        if key not in self._domain_max:
            self._domain_max[key] = max(float(self.head(layer, h, weighting).max()) for h in range(self.n_heads))
        return self._domain_max[key]

    def thumbnails(self, layer: int, weighting: str, side: int) -> torch.Tensor:
        """[heads, t, t] block maxima of each head's pattern with t <= side (a peak stays visible when shrunk)."""
        key = (layer, weighting, side)
        if key not in self._thumbnails:
            self._thumbnails[key] = self._block_maxima(layer, weighting, side)
        return self._thumbnails[key]

    def _block_maxima(self, layer: int, weighting: str, side: int) -> torch.Tensor:
        n = self.n_tokens
        block = max(1, -(-n // side))
        heads = []
        for h in range(self.n_heads):
            pattern = self.head(layer, h, weighting)[None, None]
            heads.append(F.max_pool2d(pattern, block, block, ceil_mode=True)[0, 0] if block > 1 else pattern[0, 0])
        return torch.stack(heads)

    def packed(self, layer: int, head: int, weighting: str) -> tuple[torch.Tensor, str]:
        """One head's pattern as a flat vector and its layout: "tril" (rows of keys 0..q) or "full" (n x n)."""
        pattern = self.head(layer, head, weighting)
        if self.is_causal(layer):
            rows, cols = torch.tril_indices(self.n_tokens, self.n_tokens)
            return pattern[rows, cols], "tril"
        return pattern.reshape(-1), "full"


def value_norms_from_cache(model, cache, n_layers: int) -> torch.Tensor:
    """[layers, heads, pos] ||v_j^h W_O^h|| from a run_with_cache cache holding `blocks.{L}.attn.hook_v`."""
    norms = []
    for layer in range(n_layers):
        v = cache[f"blocks.{layer}.attn.hook_v"][0]  # [pos, kv_heads, d_head]
        w_o = model.W_O[layer]  # [heads, d_head, d_model]
        if v.shape[1] != w_o.shape[0]:  # grouped-query attention: query head h reads value head h // group
            v = v.repeat_interleave(w_o.shape[0] // v.shape[1], dim=1)
        norms.append(torch.einsum("phd,hdm->hpm", v.float(), w_o.float()).norm(dim=-1))
    return torch.stack(norms)


def attention_from_model(model, prompt: str | torch.Tensor | Sequence[int]) -> AttentionData:
    """Runs `model` on `prompt` (text, or [seq] / [1, seq] token ids) and keeps every layer's patterns and value norms."""
    longer = "For longer inputs pass precomputed patterns: AttentionPatterns(pattern=..., tokens=...)."
    tokens = prompt_tokens(model, prompt, too_long=longer)
    n_layers = model.cfg.n_layers

    def wanted(name: str) -> bool:
        return name.endswith(("attn.hook_pattern", "attn.hook_v"))

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=wanted)
        patterns = torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"][0] for layer in range(n_layers)])
        norms = value_norms_from_cache(model, cache, n_layers)
    return AttentionData(token_strings(model, tokens[0].tolist()), patterns, norms)
