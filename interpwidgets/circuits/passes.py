"""Forward passes with hooks at the sites: record, differentiate, interpolate, ablate.

Every pass adds its hooks through `interventions.hooked`, which removes them when the pass ends,
also on error. `metric(output)` receives the logits `[batch, seq, d_vocab]`, or, with `readout=<hook>`,
the activation at that hook (e.g. a linear probe reading the residual stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from interpwidgets.circuits.sites import EMBED_HOOK, Site, check_metric, root_hook
from interpwidgets.interventions.hooks import hooked
from interpwidgets.patching.stacking import groups_per_chunk

Metric = Callable[[torch.Tensor], torch.Tensor]
Hook = tuple[str, Callable]


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def forward(model, tokens: torch.Tensor, hooks: Sequence[Hook], readout: str | None = None) -> torch.Tensor:
    """The logits `[batch, seq, vocab]` (or the activation at `readout`) with `hooks` in place."""
    captured: dict[str, torch.Tensor] = {}
    hooks = list(hooks)
    if readout is not None:
        if readout not in model.hook_dict:
            raise ValueError(f"readout {readout!r} is not a hook of this model (see model.hook_dict).")

        def capture(x, hook):
            captured["out"] = x
            return x

        hooks.append((readout, capture))
    with hooked(model, hooks):
        logits = model(tokens.to(device_of(model)))
    return captured["out"] if readout is not None else logits


def metric_value(model, tokens, metric: Metric, hooks: Sequence[Hook] = (), readout: str | None = None) -> float:
    """The metric (a float) with `hooks` in place, without gradients."""
    with torch.no_grad():
        return float(metric(forward(model, tokens, hooks, readout)))


def record(
    model, sites: Sequence[Site], tokens: torch.Tensor, metric: Metric | None = None, readout: str | None = None
) -> tuple[dict[str, torch.Tensor], float | None]:
    """Each site's activation `x [batch, seq, d_model]` on `tokens`, and the metric if given (no gradients)."""
    store: dict[str, torch.Tensor] = {}

    def make(site: Site):
        def hook(x, hook):
            store[site.name] = x.detach()
            return x
        return hook

    with torch.no_grad():
        out = forward(model, tokens, [(s.hook, make(s)) for s in sites], readout)
        value = float(metric(out)) if metric is not None else None
    return store, value


def gradients(
    model, sites: Sequence[Site], tokens: torch.Tensor, metric: Metric, readout: str | None = None
) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(metric, x, dm/dx) at every site on `tokens`, from one forward and one backward pass.

    dm/dx at a site is the total derivative (every later site recomputed), so it is the gradient of
    the metric with respect to each of the site's nodes after projection (`Site.feature_grad`).
    """
    store: dict[str, torch.Tensor] = {}

    def make(site: Site):
        def hook(x, hook):
            store[site.name] = x
            return x
        return hook

    hooks = [(EMBED_HOOK, root_hook)] + [(s.hook, make(s)) for s in sites]
    with torch.enable_grad():
        m = check_metric(metric(forward(model, tokens, hooks, readout)))
        xs = [store[s.name] for s in sites]
        grads = torch.autograd.grad(m, xs, allow_unused=True)
    grad = {s.name: (torch.zeros_like(x) if g is None else g.detach()) for s, x, g in zip(sites, xs, grads)}
    return float(m.detach()), {s.name: x.detach() for s, x in zip(sites, xs)}, grad


def interpolated_gradient(
    model,
    site: Site,
    tokens: torch.Tensor,
    x_clean: torch.Tensor,
    x_patch: torch.Tensor,
    metric: Metric,
    steps: int,
    readout: str | None = None,
    batch_budget_mb: float | None = None,
) -> torch.Tensor:
    """Mean over alpha = 0, 1/steps, ..., (steps-1)/steps of dm/dx at `site` when the site is set to
    `x_clean + alpha * (x_patch - x_clean)` (everything later recomputed); `[batch, seq, d_model]`.

    Several alphas run as one batch, as many as fit in `batch_budget_mb` (forward and backward; default
    1 GiB on CPU, half the free memory on a GPU); the metric is applied to each alpha's rows separately.
    """
    batch = tokens.shape[0]
    per_pass = groups_per_chunk(model, batch, tokens.shape[1], batch_budget_mb, grad=True)
    total = torch.zeros_like(x_clean)
    for start in range(0, steps, per_pass):
        alphas = torch.arange(start, min(steps, start + per_pass), dtype=x_clean.dtype, device=x_clean.device) / steps
        k = len(alphas)
        x = (x_clean[None] + alphas[:, None, None, None] * (x_patch - x_clean)[None]).reshape(k * batch, *x_clean.shape[1:])
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = forward(model, tokens.repeat(k, 1), [(site.hook, lambda a, hook, x=x: x)], readout)
            m = sum(check_metric(metric(out[i * batch:(i + 1) * batch])) for i in range(k))
            (g,) = torch.autograd.grad(m, [x], allow_unused=True)
        if g is not None:
            total += g.reshape(k, batch, *x_clean.shape[1:]).sum(0)
    return total / steps


def ablation_hooks(
    sites: Sequence[Site], keep: dict[str, torch.Tensor], values: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> list[Hook]:
    """Hooks that set every node not kept to its ablation value, site by site in forward order.

    keep[site]: bool `[seq, n_columns]` or `[n_columns]` (last column: the error term); a site
    missing from `keep` is left alone. values[site]: (f `[seq, d_sae]`, err `[seq, d_model]`) ablation
    values (e.g. means). Later sites are re-encoded from the ablated activations.
    """
    hooks = []
    for site in sites:
        if site.name not in keep:
            continue

        def hook(x, hook, site=site):
            f, err = site.split(x)
            mask = keep[site.name].to(f.device)
            f_abl, err_abl = values[site.name]
            f = torch.where(mask[..., :-1], f, f_abl.to(f))
            err = torch.where(mask[..., -1:], err, err_abl.to(err))
            return site.join(f, err).to(x)

        hooks.append((site.hook, hook))
    return hooks
