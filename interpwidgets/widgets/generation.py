"""Reproducible text generation with and without an intervention, for `Steering`.

Greedy decoding, or sampling at a temperature from a `torch.Generator` seeded per call, so the same
settings always give the same text. No key-value cache: every step reruns the whole sequence, so
interventions apply at every position, prompt and generated tokens alike (the teaching model's
prompts are short; `max_new_tokens` is bounded by the widgets).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from interpwidgets.interventions import Intervention
from interpwidgets.widgets.feature_data import device_of


@torch.no_grad()
def generate(
    model: Any,
    tokens: torch.Tensor,
    max_new_tokens: int,
    intervention: Intervention | None = None,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[int]:
    """Up to `max_new_tokens` token ids continuing `tokens [1, n]` (greedy when `temperature` is 0).

    Stops early at the end-of-text token or at the model's context length.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}.")
    generator = torch.Generator().manual_seed(seed)
    eos = getattr(model.tokenizer, "eos_token_id", None)
    sequence = tokens.to(device_of(model))
    new: list[int] = []
    with intervention if intervention is not None else nullcontext():
        while len(new) < max_new_tokens and sequence.shape[1] < model.cfg.n_ctx:
            logits = model(sequence)[0, -1].float().cpu()
            if temperature == 0:
                token = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=generator))
            new.append(token)
            if token == eos:
                break
            sequence = torch.cat([sequence, sequence.new_tensor([[token]])], dim=1)
    return new
