"""Checks for the IOI tutorial (06_ioi_circuit): name movers, S-inhibition, induction and duplicate-token heads.

Each check computes its answer by its own route, not the tutorial's path patching: direct effects by hand from
the weights and a cache (W_O, the final LayerNorm at its clean scale, the unembedding), attention re-computed from
queries and keys with one head's output taken out of the residual stream, and attention patterns on repeated
random tokens. Thresholds are fractions of the strongest head's score, so they hold on any trained model; a head
between the "must" and the "may" fraction can be given or left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from interpwidgets.teach.feedback import Feedback, compare_sets, not_answered, unanswered, wrong

Head = tuple[int, int]
MUST, MAY = 0.5, 0.25  # a head must be in the answer above MUST x the strongest score, may be above MAY x it


def parse_heads(model, answer: Any) -> set[Head]:
    """`answer` as a set of (layer, head): entries "L3H1" or (3, 1). Raises ValueError naming a bad entry."""
    if isinstance(answer, (str, tuple)) and not (isinstance(answer, tuple) and answer and isinstance(answer[0], (tuple, str))):
        answer = [answer]
    heads = set()
    for entry in answer:
        if isinstance(entry, str):
            text = entry.strip().upper()
            if not (text.startswith("L") and "H" in text):
                raise ValueError(f"{entry!r} is not a head; write heads as 'L3H1' or (3, 1).")
            layer, head = text[1:].split("H", 1)
            entry = (int(layer), int(head))
        layer, head = (int(x) for x in entry)
        if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
            raise ValueError(f"L{layer}H{head} is not a head of this model ({model.cfg.n_layers} layers x {model.cfg.n_heads} heads).")
        heads.add((layer, head))
    return heads


def heads_above(scores: torch.Tensor, fraction: float) -> set[Head]:
    """The heads of `scores [n_layers, n_heads]` at or above `fraction` x the largest score (none if it is <= 0)."""
    top = float(scores.max())
    if top <= 0:
        return set()
    return {(int(layer), int(head)) for layer, head in (scores >= fraction * top).nonzero().tolist()}


def _compare(exercise: str, answer: Any, model, scores: torch.Tensor, what: str, hint: str) -> Feedback:
    """Right when the answer holds every head above MUST x max and none below MAY x max; says counts, not heads."""
    if unanswered(answer):
        return not_answered(exercise, hint)
    try:
        given = parse_heads(model, answer)
    except (TypeError, ValueError) as error:
        return wrong(exercise, f"could not read the answer as heads: {error}", hint)
    must = heads_above(scores, MUST)
    if not must:
        return wrong(exercise, f"no head of this model scores above zero as one of the {what}.", hint)
    return compare_sets(exercise, given, must, what, hint, allowed=heads_above(scores, MAY))


def _norm_params(module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) `[d_model]` of a LayerNorm module (plain or wrapped)."""
    params = dict(module.named_parameters())
    weight = next(v for k, v in params.items() if k.endswith("weight"))
    bias = next((v for k, v in params.items() if k.endswith("bias")), torch.zeros_like(weight))
    return weight, bias


def positions(task) -> tuple[torch.Tensor, torch.Tensor]:
    """(IO position, second S position) `[batch]` of each clean IOI prompt, found by the name tokens."""
    tokens = task.clean_tokens
    io = (tokens == task.answer_tokens[:, None].to(tokens.device)).int().argmax(1)
    is_s = (tokens == task.wrong_tokens[:, None].to(tokens.device)).int()
    s2 = tokens.shape[1] - 1 - is_s.flip(1).argmax(1)
    return io, s2


@torch.no_grad()
def direct_effects(model, task) -> torch.Tensor:
    """`[n_layers, n_heads]` each head's direct effect on logit(IO) - logit(S) at the last position, mean over
    prompts: z @ W_O through the final LayerNorm (centred, divided by the clean run's scale, times its weight)
    and the unembedding columns of IO minus S."""
    names = {f"blocks.{L}.attn.hook_z" for L in range(model.cfg.n_layers)} | {"ln_final.hook_scale"}
    _, cache = model.run_with_cache(task.clean_tokens.to(model.cfg.device), names_filter=lambda n: n in names)
    weight, _ = _norm_params(model.ln_final)
    direction = model.W_U[:, task.answer_tokens] - model.W_U[:, task.wrong_tokens]  # [d_model, batch]
    scale = cache["ln_final.hook_scale"][:, -1]  # [batch, 1]
    rows = []
    for L in range(model.cfg.n_layers):
        z = cache[f"blocks.{L}.attn.hook_z"][:, -1]  # [batch, head, d_head]
        out = torch.einsum("bhd,hdm->bhm", z, model.W_O[L])  # [batch, head, d_model]
        out = (out - out.mean(-1, keepdim=True)) / scale[:, None] * weight
        rows.append(torch.einsum("bhm,mb->bh", out, direction).mean(0))
    return torch.stack(rows).float().cpu()


@torch.no_grad()
def attention_to_io(model, task) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention from the last position to IO, and to the second S) `[n_layers, n_heads]`, mean over prompts."""
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
    _, cache = model.run_with_cache(task.clean_tokens.to(model.cfg.device), names_filter=lambda n: n in names)
    io, s2 = positions(task)
    rows = torch.arange(len(io))
    to_io = [cache[f"blocks.{L}.attn.hook_pattern"][rows, :, -1, io.to(rows.device)].mean(0) for L in range(model.cfg.n_layers)]
    to_s = [cache[f"blocks.{L}.attn.hook_pattern"][rows, :, -1, s2.to(rows.device)].mean(0) for L in range(model.cfg.n_layers)]
    return torch.stack(to_io).float().cpu(), torch.stack(to_s).float().cpu()


def name_mover_scores(model, task) -> torch.Tensor:
    """`[n_layers, n_heads]` the direct effect of the heads that attend more to IO than to S, 0 for the others."""
    effect = direct_effects(model, task)
    to_io, to_s = attention_to_io(model, task)
    return torch.where(to_io > to_s, effect, torch.zeros_like(effect))


def name_movers(model, task, answer: Any) -> Feedback:
    """Right when `answer` (heads: "L3H1" or (3, 1)) are the heads that write IO - S directly into the logits and
    attend from the last position to the IO name."""
    hint = ("path-patch every head into receivers='logits' (ABC corrupt values), take the heads that lower the "
            "logit difference most, then keep those that attend from the last token to the IO name.")
    return _compare("name movers", answer, model, name_mover_scores(model, task), "name movers", hint)


@torch.no_grad()
def s_inhibition_scores(model, task, movers: Iterable) -> torch.Tensor:
    """`[n_layers, n_heads]` how much the movers' mean attention from the last position to IO falls when one
    earlier head's clean output is swapped for its corrupt (ABC) output in the movers' query input only.
    The movers' queries are recomputed by hand: resid_pre (last position) minus the head's change through W_O,
    layer norm ln1 with its own statistics, W_Q; keys from the clean run."""
    movers = parse_heads(model, movers)
    if not movers:
        raise ValueError("Give the name movers (a non-empty list of heads) to measure S-inhibition into.")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    layers = sorted({L for L, _ in movers})
    names = {f"blocks.{L}.attn.hook_z" for L in range(n_layers)}
    names |= {f"blocks.{L}.{n}" for L in layers for n in ("hook_resid_pre", "attn.hook_k")}
    device = model.cfg.device
    _, clean = model.run_with_cache(task.clean_tokens.to(device), names_filter=lambda n: n in names)
    _, corrupt = model.run_with_cache(task.corrupt_tokens.to(device), names_filter=lambda n: n in names)
    io, _ = positions(task)
    rows = torch.arange(len(io), device=io.device)

    def attention(layer: int, head: int, resid: torch.Tensor) -> torch.Tensor:
        """mean attention of `head` from the last position to IO with query input `resid [batch, d_model]`."""
        weight, bias = _norm_params(model.blocks[layer].ln1)
        centred = resid - resid.mean(-1, keepdim=True)
        normed = centred / (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt() * weight + bias
        q = normed @ model.W_Q[layer, head] + model.b_Q[layer, head]  # [batch, d_head]
        k = clean[f"blocks.{layer}.attn.hook_k"][:, :, head]  # [batch, seq, d_head]
        pattern = torch.softmax(torch.einsum("bd,bsd->bs", q, k) / model.cfg.d_head ** 0.5, -1)
        return pattern[rows, io].mean()

    base = {m: attention(m[0], m[1], clean[f"blocks.{m[0]}.hook_resid_pre"][:, -1]) for m in movers}
    scores = torch.zeros(n_layers, n_heads)
    for L in range(n_layers):
        change = (corrupt[f"blocks.{L}.attn.hook_z"][:, -1] - clean[f"blocks.{L}.attn.hook_z"][:, -1])  # [batch, head, d_head]
        for h in range(n_heads):
            delta = change[:, h] @ model.W_O[L, h]  # [batch, d_model]
            drops = [base[m] - attention(m[0], m[1], clean[f"blocks.{m[0]}.hook_resid_pre"][:, -1] + delta)
                     for m in movers if m[0] > L]
            scores[L, h] = float(sum(drops) / len(drops)) if drops else 0.0
    return scores


def s_inhibition(model, task, movers: Iterable, answer: Any) -> Feedback:
    """Right when `answer` are the heads whose output, through the name movers' queries only, makes them attend
    to IO (the heads whose corrupt output, patched into those queries, lowers that attention most)."""
    hint = ("path-patch every head into the name movers' queries (receivers=['L3H1.q', ...]) and keep the heads "
            "whose patch lowers the logit difference most.")
    try:
        scores = s_inhibition_scores(model, task, movers)
    except ValueError as error:
        return wrong("S-inhibition heads", str(error), hint)
    return _compare("S-inhibition heads", answer, model, scores, "S-inhibition heads", hint)


@torch.no_grad()
def repeat_scores(model, length: int = 12, n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(induction scores, duplicate-token scores) `[n_layers, n_heads]` on BOS + r + r, r `length` random tokens:
    mean attention from each token of the second copy to the token after its first occurrence, and to it."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.cfg.d_vocab
    special = set(model.tokenizer.all_special_ids)
    pool = torch.tensor([i for i in range(vocab) if i not in special])
    random = pool[torch.randint(len(pool), (n, length), generator=generator)]
    bos = torch.full((n, 1), model.tokenizer.bos_token_id)
    tokens = torch.cat([bos, random, random], 1).to(model.cfg.device)
    names = {f"blocks.{L}.attn.hook_pattern" for L in range(model.cfg.n_layers)}
    _, cache = model.run_with_cache(tokens, names_filter=lambda x: x in names)
    second = torch.arange(length + 1, 2 * length + 1)  # positions of the second copy
    induction, duplicate = [], []
    for L in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{L}.attn.hook_pattern"].cpu()  # [n, head, seq, seq]
        induction.append(pattern[:, :, second[1:], second[1:] - length + 1].mean((0, 2)))
        duplicate.append(pattern[:, :, second, second - length].mean((0, 2)))
    return torch.stack(induction).float(), torch.stack(duplicate).float()


def induction_heads(model, answer: Any) -> Feedback:
    """Right when `answer` are the heads with the largest induction scores on repeated random tokens."""
    hint = ("on a repeated random sequence, read each head's attention from a token's second occurrence to the "
            "token after its first occurrence (the offset length - 1 below the diagonal), averaged.")
    return _compare("induction heads", answer, model, repeat_scores(model)[0], "induction heads", hint)


def duplicate_token_heads(model, answer: Any) -> Feedback:
    """Right when `answer` are the heads that attend most from a token's second occurrence to its first."""
    hint = ("on a repeated random sequence, read each head's attention from a token's second occurrence to its "
            "first occurrence (the offset length below the diagonal), averaged.")
    return _compare("duplicate-token heads", answer, model, repeat_scores(model)[1], "duplicate-token heads", hint)
