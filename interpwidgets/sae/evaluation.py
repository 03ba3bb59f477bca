"""`evaluate`: how well a dictionary reconstructs its hook and how much of the model it preserves.

Metrics, pooled over every token position of the evaluation tokens:
- l0: mean number of active latents per token.
- mse: mean squared reconstruction error per element of the output hook.
- explained_variance: 1 - sum ||y - y_hat||^2 / sum ||y - mean(y)||^2 (mean over tokens).
- ce_loss_clean / ce_loss_with_sae / ce_loss_zero_ablation: next-token cross-entropy of the clean
  model, with the reconstruction spliced in (no error term), and with the output hook zeroed.
- ce_loss_recovered: (CE_zero_ablation - CE_with_sae) / (CE_zero_ablation - CE_clean), as SAELens defines it.
- dead_fraction / dense_fraction: latents never active / active on more than `dense_threshold` of tokens.
- feature_frequency: tensor [d_sae], the fraction of tokens each latent is active on
  (draw it with `activation_frequency_histogram`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from interpwidgets.sae.base import SAE
from interpwidgets.sae.inputs import as_dictionary_input, check_fits, encode_checked, to_dictionary
from interpwidgets.sae.splicing import spliced
from interpwidgets.sae.activations import CORPUS_SEED, token_batches, token_source

EVAL_SEED = CORPUS_SEED + 1  # held out from the SAE training stream


def _next_token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over `tokens [batch, seq]` (a scalar)."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="sum")


class SAEEvaluation(dict):
    """`evaluate`'s numbers: a plain dict (keys as below) that notebooks show as a table."""


@torch.no_grad()
def evaluate(
    model,
    sae: SAE,
    tokens=None,
    *,
    n_batches: int = 8,
    batch_size: int = 16,
    context_size: int | None = None,
    dense_threshold: float = 0.1,
    progress: bool = False,
) -> SAEEvaluation:
    """Reconstruction, sparsity and CE-loss metrics of `sae` on `model` (see the module docstring).

    tokens: a token tensor [n, seq], a list of strings, or None for `n_batches` batches of the
    teaching corpus (a seed the bundled SAEs were not trained on); context_size as in `train`.
    The dictionary runs in its own dtype and device; statistics are computed in float32.
    """
    check_fits(model, sae)
    rows, context = token_source(model, tokens, context_size)
    if rows is not None:
        n_batches = -(-len(rows) // batch_size)
    batches = token_batches(model, rows, batch_size, context, EVAL_SEED, 0)
    in_hook, out_hook = sae.cfg.hook_name, sae.cfg.output_hook
    names = list({in_hook, out_hook})
    device = model.cfg.device
    totals = dict(ce_clean=0.0, ce_sae=0.0, ce_zero=0.0, sq_err=0.0, l0=0.0, n_tokens=0, n_predicted=0)
    y_sum = y_sq = None
    fired = torch.zeros(sae.cfg.d_sae, device=sae.W_enc.device)

    def zero(activation, hook):
        return torch.zeros_like(activation)

    for _ in tqdm(range(n_batches), desc="evaluating", disable=not progress):
        batch = next(batches).to(device)
        logits, cache = model.run_with_cache(batch, names_filter=names)
        x = to_dictionary(sae, as_dictionary_input(cache[in_hook], sae.cfg.d_in, in_hook).flatten(0, -2))
        f = encode_checked(sae, x, in_hook, dims=("token",))
        y_hat = sae.decode(f).float()
        y = as_dictionary_input(cache[out_hook], sae.cfg.d_out, out_hook).flatten(0, -2).to(y_hat)
        active = f != 0
        totals["sq_err"] += (y - y_hat).pow(2).sum().item()
        totals["l0"] += active.sum().item()
        totals["n_tokens"] += len(x)
        fired += active.sum(0)
        y_sum = y.sum(0) if y_sum is None else y_sum + y.sum(0)
        y_sq = y.pow(2).sum(0) if y_sq is None else y_sq + y.pow(2).sum(0)
        totals["ce_clean"] += _next_token_ce(logits, batch).item()
        totals["n_predicted"] += batch[:, 1:].numel()
        with spliced(model, sae, error_term=False):
            totals["ce_sae"] += _next_token_ce(model(batch), batch).item()
        totals["ce_zero"] += _next_token_ce(model.run_with_hooks(batch, fwd_hooks=[(out_hook, zero)]), batch).item()

    n = totals["n_tokens"]
    variance = (y_sq - y_sum.pow(2) / n).sum().item()
    ce = {k: totals[k] / totals["n_predicted"] for k in ("ce_clean", "ce_sae", "ce_zero")}
    frequency = (fired / n).cpu()
    return SAEEvaluation({
        "l0": totals["l0"] / n,
        "mse": totals["sq_err"] / (n * sae.cfg.d_out),
        "explained_variance": 1 - totals["sq_err"] / max(variance, 1e-12),
        "ce_loss_clean": ce["ce_clean"],
        "ce_loss_with_sae": ce["ce_sae"],
        "ce_loss_zero_ablation": ce["ce_zero"],
        "ce_loss_recovered": (ce["ce_zero"] - ce["ce_sae"]) / (ce["ce_zero"] - ce["ce_clean"]),
        "dead_fraction": (frequency == 0).float().mean().item(),
        "dense_fraction": (frequency > dense_threshold).float().mean().item(),
        "n_tokens": n,
        "feature_frequency": frequency,
    })


def activation_frequency_histogram(stats_or_frequency, ax=None, bins: int = 50):
    """Histogram of log10 activation frequencies (dead latents counted at the left edge); returns the Figure.

    stats_or_frequency: the dict from `evaluate` or a frequency tensor [d_sae].
    """
    import matplotlib.pyplot as plt

    freq = stats_or_frequency["feature_frequency"] if isinstance(stats_or_frequency, dict) else stats_or_frequency
    freq = torch.as_tensor(freq, dtype=torch.float64)
    alive = freq[freq > 0]
    floor = alive.min().log10().floor().item() - 1 if len(alive) else -6.0
    values = torch.where(freq > 0, freq.clamp_min(1e-30).log10(), torch.full_like(freq, floor)).numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    ax.hist(values, bins=bins, color="#4c72b0")
    ax.set_xlabel("log10 activation frequency (fraction of tokens)")
    ax.set_ylabel("latents")
    dead = int((freq == 0).sum())
    ax.set_title(f"Latent activation frequencies ({dead} dead, shown at {floor:.0f})" if dead else "Latent activation frequencies")
    return fig
