"""Every head's attention pattern on one prompt, and its value-weighted form.

Value weighting follows Kobayashi et al. 2020 ("Attention is not only a weight"): the weight of key j for query i
in head h is ||alpha_ij f_h(x_j)|| = alpha_ij * ||v_j^h W_O^h||, the size of what token j adds to token i's
residual stream through that head, not only how much it is attended to. On grouped-query models query head h
reads key/value head h // kv_group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled
from interpwidgets.interventions.components import kv_group
from interpwidgets.models.tokens import prompt_tokens, token_strings

WEIGHTINGS = ("attention", "value")
"""The weightings of a pattern: "attention" (probabilities alpha_ij) and "value" (alpha_ij * ||v_j W_O||)."""
UNITS = {"attention": "attention probability", "value": "\u2016\u03b1\u00b7v\u00b7W_O\u2016 (value-weighted)"}
"""What each weighting's numbers are, as a legend names them."""


@dataclass
class AttentionResult:
    """Every head's attention on one prompt.

    tokens: [n] display strings. patterns: [layer, head, query, key] attention probabilities, kept as float16 on
    the CPU ([head, query, key] is read as one layer). value_norms: [layer, head, key] ||v_j^h W_O^h|| (float32,
    CPU), or None for patterns that come without them (then only the "attention" weighting exists).
    """

    tokens: list[str]
    patterns: torch.Tensor
    value_norms: torch.Tensor | None = None

    def __post_init__(self) -> None:
        patterns = torch.as_tensor(self.patterns).detach().to("cpu", torch.float32)
        if patterns.ndim == 3:
            patterns = patterns[None]
        if patterns.ndim != 4 or patterns.shape[-1] != patterns.shape[-2]:
            raise ValueError(
                f"pattern must be [heads, query, key] or [layers, heads, query, key] with query = key, "
                f"got shape {tuple(patterns.shape)}."
            )
        n = patterns.shape[-1]
        if len(self.tokens) != n or n == 0:
            raise ValueError(f"got {len(self.tokens)} tokens for a pattern over {n} positions; they must match (and be > 0).")
        if not all(isinstance(token, str) for token in self.tokens):
            raise TypeError("tokens must be strings (e.g. model.to_str_tokens(prompt)).")
        if not torch.isfinite(patterns).all() or (patterns < 0).any():
            raise ValueError("pattern values must be finite and non-negative (attention probabilities).")
        self.tokens = list(self.tokens)
        self.patterns = patterns.to(torch.float16)
        if self.value_norms is not None:
            norms = torch.as_tensor(self.value_norms).detach().to("cpu", torch.float32)
            if norms.ndim == 2:
                norms = norms[None]
            if tuple(norms.shape) != tuple(patterns.shape[:3]):
                raise ValueError(
                    f"value_norms must be [layers, heads, key] = {tuple(patterns.shape[:3])}, got {tuple(norms.shape)}."
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
        """The weightings this result can show: both with value norms, else "attention" only."""
        return list(WEIGHTINGS) if self.value_norms is not None else ["attention"]

    def pattern(self, layer: int, head: int, *, weighting: str = "attention") -> torch.Tensor:
        """[query, key] float32: one head's attention probabilities, or with weighting="value" each key's column
        scaled by its value norm."""
        if weighting not in self.weightings:
            raise ValueError(f"weighting {weighting!r} is not available; choose one of {self.weightings}.")
        pattern = self.patterns[layer, head].float()
        return pattern * self.value_norms[layer, head][None, :] if weighting == "value" else pattern

    def is_causal(self, layer: int) -> bool:
        """True when no query of this layer attends to a later key (every pattern is lower-triangular)."""
        return bool((torch.triu(self.patterns[layer], diagonal=1) == 0).all())


TOO_LONG = "For patterns computed elsewhere, build AttentionResult(tokens, patterns) (a widget takes pattern=, tokens=)."


@torch.no_grad()
def attention_patterns(
    model, prompt: str | torch.Tensor | Sequence[int], *, progress: bool | None = None
) -> AttentionResult:
    """Every layer's attention patterns and value norms on `prompt` (text, or token ids [n] / [1, n]), one forward."""
    tokens = prompt_tokens(model, prompt, too_long=TOO_LONG)
    n_layers, group = model.cfg.n_layers, kv_group(model)
    bar = tqdm(total=n_layers + 1, desc="attention patterns", delay=1.0, leave=False, disable=not progress_enabled(progress))
    with bar:
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith(("attn.hook_pattern", "attn.hook_v")))
        bar.update()
        patterns, norms = [], []
        for layer in range(n_layers):
            patterns.append(cache[f"blocks.{layer}.attn.hook_pattern"][0].float().cpu())  # [head, query, key]
            v = cache[f"blocks.{layer}.attn.hook_v"][0].float().repeat_interleave(group, dim=1)  # [key, head, d_head]
            w_o = model.W_O[layer].float()  # [head, d_head, d_model]
            norms.append(torch.einsum("khd,hdm->hkm", v, w_o).norm(dim=-1).cpu())  # [head, key]
            bar.update()
    return AttentionResult(token_strings(model, tokens[0].tolist()), torch.stack(patterns), torch.stack(norms))
