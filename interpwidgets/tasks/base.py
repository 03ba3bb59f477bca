"""`Task`: a batch of same-length clean/corrupt prompts with answers, the input of every patching method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class Task:
    """Clean and corrupt prompts of equal length, scored at the last position.

    clean_tokens, corrupt_tokens: [batch, seq] token ids (BOS first).
    answer_tokens: [batch] the clean prompt's correct next token; wrong_tokens: [batch] the
    corrupt prompt's answer (the clean prompt's most plausible wrong answer).
    """

    name: str
    clean_tokens: torch.Tensor
    corrupt_tokens: torch.Tensor
    answer_tokens: torch.Tensor
    wrong_tokens: torch.Tensor
    clean_prompts: list[str] = field(default_factory=list)
    corrupt_prompts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.clean_tokens.shape != self.corrupt_tokens.shape:
            raise ValueError(
                f"clean_tokens {tuple(self.clean_tokens.shape)} and corrupt_tokens "
                f"{tuple(self.corrupt_tokens.shape)} must have the same [batch, seq] shape."
            )
        if self.answer_tokens.shape != (len(self.clean_tokens),) or self.wrong_tokens.shape != self.answer_tokens.shape:
            raise ValueError("answer_tokens and wrong_tokens must each hold one token id per prompt: shape [batch].")

    def __len__(self) -> int:
        return len(self.clean_tokens)

    def to(self, device: str | torch.device) -> "Task":
        moved = {k: getattr(self, k).to(device) for k in ("clean_tokens", "corrupt_tokens", "answer_tokens", "wrong_tokens")}
        return Task(self.name, **moved, clean_prompts=self.clean_prompts, corrupt_prompts=self.corrupt_prompts)

    def subset(self, index: slice | Sequence[int] | torch.Tensor) -> "Task":
        """The prompts at `index` (a slice or a list of row indices)."""
        rows = index if isinstance(index, slice) else torch.as_tensor(index, dtype=torch.long)
        pick = (lambda xs: xs[index]) if isinstance(index, slice) else (lambda xs: [xs[i] for i in rows.tolist()])
        return Task(
            self.name, self.clean_tokens[rows], self.corrupt_tokens[rows], self.answer_tokens[rows],
            self.wrong_tokens[rows], pick(self.clean_prompts), pick(self.corrupt_prompts),
        )

    def logit_diff(self, logits: torch.Tensor) -> torch.Tensor:
        """[batch] logit(answer) - logit(wrong) at the last position, in float32 whatever the model's dtype;
        `logits` is [batch, seq, vocab]."""
        if logits.ndim != 3 or logits.shape[0] != len(self):
            raise ValueError(f"logits must be [batch={len(self)}, seq, vocab], got {tuple(logits.shape)}.")
        last = logits[:, -1, :].float()
        answer = self.answer_tokens.to(last.device)[:, None]
        wrong = self.wrong_tokens.to(last.device)[:, None]
        return (last.gather(1, answer) - last.gather(1, wrong)).squeeze(1)

    def metric(self, logits: torch.Tensor, reduce: bool = True) -> torch.Tensor:
        """Mean logit difference (answer - wrong) at the last position; per prompt with `reduce=False`."""
        diff = self.logit_diff(logits)
        return diff.mean() if reduce else diff

    def accuracy(self, logits: torch.Tensor) -> float:
        """Fraction of prompts where the answer's logit beats the wrong token's."""
        return (self.logit_diff(logits) > 0).float().mean().item()


def single_token_id(tokenizer, text: str) -> int:
    """The id of `text` if the tokenizer encodes it as exactly one token, else a ValueError naming it."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(
            f"The tokenizer does not have {text!r} as a single token (it encodes to {ids}); this task needs "
            "it to be one token. Use a model whose tokenizer has it, or pass words it does have."
        )
    return ids[0]


def encode_prompts(model, prompts: Sequence[str]) -> torch.Tensor:
    """[batch, seq] ids with BOS prepended; all prompts must encode to the same length within n_ctx."""
    tokenizer = model.tokenizer
    bos = tokenizer.bos_token_id
    rows = [[bos] + tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"Prompts encode to different lengths {sorted(lengths)}; a task needs equal lengths.")
    length = lengths.pop()
    check_context(model, length)
    return torch.tensor(rows, dtype=torch.long)


def check_context(model, length: int) -> None:
    n_ctx = model.cfg.n_ctx
    if length > n_ctx:
        raise ValueError(
            f"Prompts of {length} tokens are longer than the model's context of {n_ctx} tokens; "
            f"use shorter prompts (at most {n_ctx} tokens, BOS included)."
        )


def check_n(n: int) -> None:
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive number of prompts, got {n!r}.")
