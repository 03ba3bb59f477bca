"""Forward passes with hooks at the sites: record, differentiate, interpolate, ablate.

Every pass adds its hooks through `interventions.hooked`, which removes them when the pass ends,
also on error. `metric(output)` receives the logits `[batch, seq, d_vocab]`, or, with `readout=<hook>`,
the activation at that hook (e.g. a linear probe reading the residual stream).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from interpwidgets.circuits.sites import SAESite, embed_site
from interpwidgets.interventions.hooks import HookFn, hooked
from interpwidgets.models.device import device_of
from interpwidgets.patching.integration import ig_alphas
from interpwidgets.patching.stacking import groups_per_chunk
from interpwidgets.tasks.metric import Metric, check_finite, check_metric

Hook = tuple[str, Callable]
POSITION_DIMS = ("prompt", "position")


def keeper(store: dict[str, torch.Tensor], key: str) -> HookFn:
    """A hook that keeps its activation in `store[key]` and passes it on unchanged (still in the autograd graph)."""
    def hook(x, hook):
        store[key] = x
        return x
    return hook


def root_hook(x: torch.Tensor, hook=None) -> torch.Tensor:
    """Forward hook that makes the embedding a fresh leaf requiring grad, so gradients reach every
    later site even when the model's parameters are frozen."""
    return x.detach().requires_grad_(True)


def forward(model, tokens: torch.Tensor, hooks: Sequence[Hook] = (), *, readout: str | None = None) -> torch.Tensor:
    """The logits `[batch, seq, vocab]` (or the activation at `readout`) with `hooks` in place."""
    captured: dict[str, torch.Tensor] = {}
    hooks = list(hooks)
    if readout is not None:
        if readout not in model.hook_dict:
            raise ValueError(f"readout {readout!r} is not a hook of this model (see model.hook_dict).")
        hooks.append((readout, keeper(captured, readout)))
    with hooked(model, hooks):
        logits = model(tokens.to(device_of(model)))
    return captured[readout] if readout is not None else logits


@torch.no_grad()
def record(model, tokens: torch.Tensor, hooks: Iterable[str], *, readout: str | None = None
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(the output, `{hook: activation}`) of one pass on `tokens` without gradients."""
    store: dict[str, torch.Tensor] = {}
    out = forward(model, tokens, [(h, keeper(store, h)) for h in dict.fromkeys(hooks)], readout=readout)
    return out, store


def metric_value(model, tokens: torch.Tensor, metric: Metric, hooks: Sequence[Hook] = (), *,
                 readout: str | None = None) -> float:
    """The metric (a float) with `hooks` in place, without gradients."""
    with torch.no_grad():
        return float(check_metric(metric(forward(model, tokens, hooks, readout=readout))))


def site_activations(model, sites: Sequence[SAESite], tokens: torch.Tensor, *, readout: str | None = None
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(the output, each site's activation `x [batch, seq, d_model]` by site name) on `tokens`, without gradients."""
    out, acts = record(model, tokens, [s.hook for s in sites], readout=readout)
    return out, {s.name: acts[s.hook] for s in sites}


def gradients(model, sites: Sequence[SAESite], tokens: torch.Tensor, metric: Metric, *, readout: str | None = None
              ) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(metric, x, dm/dx) at every site on `tokens`, from one forward and one backward pass.

    dm/dx at a site is the total derivative (every later site recomputed), so it is the gradient of
    the metric with respect to each of the site's nodes after projection (`SAESite.feature_grad`).
    """
    store: dict[str, torch.Tensor] = {}
    hooks = [(embed_site().hook, root_hook)] + [(s.hook, keeper(store, s.name)) for s in sites]
    with torch.enable_grad():
        out = forward(model, tokens, hooks, readout=readout)
        for s in sites:  # in forward order: the first site where a NaN/inf appeared
            check_finite(store[s.name], f"The activation at site {s.name} ({s.hook})", dims=POSITION_DIMS)
        m = check_metric(metric(out), differentiable=True)
        xs = [store[s.name] for s in sites]
        grads = torch.autograd.grad(m, xs, allow_unused=True)
    grad = {s.name: (torch.zeros_like(x) if g is None else g.detach()) for s, x, g in zip(sites, xs, grads)}
    for s in reversed(sites):  # the gradient flows backwards: the last site is where a bad one appears first
        check_finite(grad[s.name], f"The metric's gradient at site {s.name} ({s.hook})", dims=POSITION_DIMS)
    return float(m.detach()), {s.name: x.detach() for s, x in zip(sites, xs)}, grad


def interpolated_gradient(
    model,
    site: SAESite,
    tokens: torch.Tensor,
    x_clean: torch.Tensor,
    x_patch: torch.Tensor,
    metric: Metric,
    steps: int,
    *,
    readout: str | None = None,
    batch_budget_mb: float | None = None,
) -> torch.Tensor:
    """Mean over the integrated-gradient points alpha (`patching.integration.ig_alphas`, the midpoints) of
    dm/dx at `site` when the site is set to `x_clean + alpha * (x_patch - x_clean)` (everything later
    recomputed); `[batch, seq, d_model]`.

    Several alphas run as one batch, as many as fit in `batch_budget_mb` (forward and backward; see
    `iw.config`); the metric is applied to each alpha's rows separately.
    """
    batch = tokens.shape[0]
    per_pass = groups_per_chunk(model, batch, tokens.shape[1], batch_budget_mb, grad=True)
    points = ig_alphas(steps)
    total = torch.zeros_like(x_clean)
    for start in range(0, steps, per_pass):
        alphas = torch.tensor(points[start:start + per_pass], dtype=x_clean.dtype, device=x_clean.device)
        k = len(alphas)
        x = (x_clean[None] + alphas[:, None, None, None] * (x_patch - x_clean)[None]).reshape(k * batch, *x_clean.shape[1:])
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = forward(model, tokens.repeat(k, 1), [(site.hook, lambda a, hook, x=x: x)], readout=readout)
            m = sum(check_metric(metric(out[i * batch:(i + 1) * batch]), differentiable=True,
                                 where=f"metric at alpha {float(alphas[i]):g} of site {site.name}'s integrated gradients")
                    for i in range(k))
            (g,) = torch.autograd.grad(m, [x], allow_unused=True)
        if g is not None:
            check_finite(g, f"The metric's gradient at site {site.name} ({site.hook}) in its integrated gradients",
                         dims=("alpha x prompt", "position"))
            total += g.reshape(k, batch, *x_clean.shape[1:]).sum(0)
    return total / steps


def ablation_hooks(
    sites: Sequence[SAESite], keep: dict[str, torch.Tensor], values: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> list[Hook]:
    """Hooks that set every node not kept to its ablation value, site by site in forward order.

    keep[site]: bool over the site's node columns (`SAESite.columns`), `[seq, n_columns]` or `[n_columns]`;
    a site missing from `keep` is left alone. values[site]: (f `[seq, d_sae]`, err `[seq, d_model]`) ablation
    values (e.g. means). Later sites are re-encoded from the ablated activations.
    """
    hooks = []
    for site in sites:
        if site.name not in keep:
            continue

        def hook(x, hook, site=site):
            f, err = site.split(x)
            keep_f, keep_err = site.columns(keep[site.name].to(f.device))
            f_abl, err_abl = values[site.name]
            f = torch.where(keep_f, f, f_abl.to(f))
            err = torch.where(keep_err[..., None], err, err_abl.to(err))
            return site.join(f, err).to(x)

        hooks.append((site.hook, hook))
    return hooks
