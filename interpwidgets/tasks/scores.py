"""Held-out scores of a model on the three tasks (the teaching model's model-card metrics).

IOI: mean logit difference (IO - S) and IO-beats-S accuracy on held-out names and templates.
Induction: top-1 accuracy over the predictable positions of the repeated half, on random tokens of the whole
vocabulary (`induction_accuracy`), on leading-space words (`induction_word_accuracy`), and on whole-vocabulary
sequences as long as the context (`induction_long_accuracy`: positions up to n_ctx - 1).
Brackets: at every position whose next token is a closer, the argmax over the three closers is right.
"""

from __future__ import annotations

import random

import torch

from interpwidgets.data import corpus, vocab
from interpwidgets.tasks.base import single_token_id
from interpwidgets.tasks.induction import induction


@torch.no_grad()
def ioi_scores(model, *, n: int, seed: int) -> dict[str, float]:
    """IOI over every held-out template (each template group evaluated separately, then pooled)."""
    diffs = []
    per_template = max(1, n // len(vocab.HELD_OUT_TEMPLATES))
    rng = random.Random(seed)
    for template in vocab.HELD_OUT_TEMPLATES:
        sentences = [corpus.ioi_sentence(rng, "held_out", template) for _ in range(per_template)]
        tok = model.tokenizer
        rows = [[tok.bos_token_id] + tok.encode(s.text, add_special_tokens=False) for s in sentences]
        logits = model(torch.tensor(rows, device=model.cfg.device))[:, -1]
        io = torch.tensor([single_token_id(tok, " " + s.io) for s in sentences], device=logits.device)
        s_ = torch.tensor([single_token_id(tok, " " + s.s) for s in sentences], device=logits.device)
        diffs.append(logits.gather(1, io[:, None]) - logits.gather(1, s_[:, None]))
    diff = torch.cat(diffs).squeeze(1)
    return {"ioi_logit_diff": diff.mean().item(), "ioi_accuracy": (diff > 0).float().mean().item()}


@torch.no_grad()
def induction_accuracy(model, *, n: int, seed: int, length: int = 12, tokens: str = "vocabulary") -> float:
    task = induction(model, n=n, seed=seed, length=length, tokens=tokens)
    tokens = task.clean_tokens.to(model.cfg.device)
    logits = model(tokens)
    # positions L+1 .. 2L-1 (0 = BOS) predict the repeated tokens r2 .. rL-1 (rL is the task's answer, at -1)
    predicted = logits[:, length + 1 : -1].argmax(-1)
    target = tokens[:, length + 2 :]
    return (predicted == target).float().mean().item()


@torch.no_grad()
def brackets_accuracy(model, *, n: int, seed: int, n_pairs: int = 10) -> float:
    tok = model.tokenizer
    closer_ids = torch.tensor([single_token_id(tok, " " + c) for _, c in vocab.BRACKET_PAIRS], device=model.cfg.device)
    rng = random.Random(seed)
    ids = {b: single_token_id(tok, " " + b) for pair in vocab.BRACKET_PAIRS for b in pair}
    rows = [[tok.bos_token_id] + [ids[b] for b in corpus.bracket_sequence(rng, n_pairs)] for _ in range(n)]
    tokens = torch.tensor(rows, device=model.cfg.device)
    logits = model(tokens)[:, :-1]
    target = tokens[:, 1:]
    is_closer = (target[..., None] == closer_ids).any(-1)
    choice = closer_ids[logits[..., closer_ids].argmax(-1)]
    return (choice == target)[is_closer].float().mean().item()


def evaluate(model, *, n: int = 512, seed: int = 1234) -> dict[str, float]:
    """All held-out scores: `ioi_logit_diff`, `ioi_accuracy`, `induction_accuracy` (whole vocabulary),
    `induction_word_accuracy`, `induction_long_accuracy` (whole vocabulary, sequences filling the context, so
    the late positions count), `brackets_accuracy` (held-out names and templates; the default `seed` differs from
    any training seed)."""
    scores = ioi_scores(model, n=n, seed=seed)
    scores["induction_accuracy"] = induction_accuracy(model, n=n, seed=seed)
    scores["induction_word_accuracy"] = induction_accuracy(model, n=n, seed=seed, tokens="words")
    scores["induction_long_accuracy"] = induction_accuracy(model, n=max(8, n // 8), seed=seed,
                                                           length=(model.cfg.n_ctx - 1) // 2)
    scores["brackets_accuracy"] = brackets_accuracy(model, n=n, seed=seed)
    return scores
