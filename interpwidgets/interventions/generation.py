"""Text generation under an intervention: greedy, or sampled reproducibly from a seed.

    new_ids = iw.interventions.generate(model, tokens, intervention=iw.interventions.steer(model, "resid_post1", v, alpha=4.0))

No key-value cache: every step reruns the whole sequence, so the intervention applies at every position,
prompt and generated tokens alike (meant for short prompts and continuations).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled
from interpwidgets.interventions.intervention import Intervention
from interpwidgets.models.device import device_of


@torch.no_grad()
def generate(
    model,
    tokens: torch.Tensor,
    *,
    intervention: Intervention | None = None,
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    seed: int = 0,
    progress: bool | None = None,
) -> list[int]:
    """The ids of up to `max_new_tokens` tokens continuing `tokens` [1, n] (or [n]), under `intervention`.

    temperature 0 is greedy (the most probable token each step); above 0, tokens are drawn from
    softmax(logits / temperature) by a CPU `torch.Generator` seeded with `seed`, so the same arguments always
    give the same ids. Stops early after the end-of-text token or when the sequence fills the model's context.
    """
    tokens = torch.as_tensor(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[0] != 1 or tokens.shape[1] == 0 or tokens.is_floating_point():
        raise ValueError(f"tokens must be integer ids of shape [1, n] or [n] with n > 0, got {tokens.dtype} {tuple(tokens.shape)}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}.")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature}.")
    generator = torch.Generator().manual_seed(seed)
    eos = getattr(getattr(model, "tokenizer", None), "eos_token_id", None)
    sequence = tokens.to(device_of(model))
    new: list[int] = []
    bar = tqdm(total=max_new_tokens, desc="generating", unit="token", delay=1.0, leave=False,
               disable=not progress_enabled(progress))
    with bar, intervention if intervention is not None else nullcontext():
        while len(new) < max_new_tokens and sequence.shape[1] < model.cfg.n_ctx:
            logits = model(sequence)[0, -1].float().cpu()  # [vocab]
            if temperature == 0:
                token = int(logits.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            new.append(token)
            bar.update()
            if token == eos:
                break
            sequence = torch.cat([sequence, sequence.new_tensor([[token]])], dim=1)
    return new
