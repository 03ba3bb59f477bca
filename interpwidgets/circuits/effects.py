"""Node effects of SAE features and error terms (Marks et al. 2024, section 2).

The effect of patching a node a from its clean value to its patch value on a metric m,

    IE(a) = m(clean | do(a = a_patch)) - m(clean),

is estimated for every node at once:

- attribution patching ("atp"):   IE ~ dm/da|clean . (a_patch - a_clean)
- integrated gradients ("ig"):    IE ~ (a_patch - a_clean) . mean_k dm/da|alpha_k,  alpha_k = (k + 1/2) / steps
  (the midpoints of `patching.integration`, as `iw.patching.attribution_patch` uses), where all nodes of
  the node's site are interpolated together (everything later recomputed).

Because x = f @ W_dec + b_dec + err, dm/df = dm/dx @ W_dec^T and dm/derr = dm/dx, and interpolating
(f, err) interpolates x; so one gradient of d_model numbers per position and site gives every
feature's effect. Effects are means over prompts (the metric is a mean over prompts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from interpwidgets.circuits import passes
from interpwidgets.circuits.sites import SITE_KINDS, SAESite, resolve_sites
from interpwidgets.config import progress_enabled
from interpwidgets.patching.integration import check_method
from interpwidgets.tasks.metric import Metric, check_metric


@dataclass
class NodeEffects:
    """Dense node effects at every site, with what edges and faithfulness need.

    effects[site]: `[seq, n_columns]` effect of each node at each position (columns as `SAESite.columns`
        splits them: features, then the error term), averaged over prompts; `aggregated(site, "sum")` sums
        positions.
    grads[site]: dm/dx `[batch, seq, d_model]` at clean (atp) or averaged along the path (ig).
    x_clean[site], x_patch[site]: `[batch, seq, d_model]` activations; with a zero patch x_patch is
        the activation with every node at zero (`zero_patch` is True).
    """

    sites: list[SAESite]
    method: str
    steps: int | None
    effects: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]
    x_clean: dict[str, torch.Tensor]
    x_patch: dict[str, torch.Tensor]
    zero_patch: bool
    metric_clean: float
    metric_patch: float | None

    @property
    def ablation(self) -> str:
        """What the nodes were patched to: "zero", or "resample" (their values on the patch prompts)."""
        return "zero" if self.zero_patch else "resample"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The component kinds of the sites (without the embedding)."""
        return tuple(dict.fromkeys(s.kind for s in self.sites if s.sae is not None))

    def site(self, name: str) -> SAESite:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(f"No site {name!r}; sites are {[s.name for s in self.sites]}.")

    def clean_nodes(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, err) at clean: `[batch, seq, d_sae]`, `[batch, seq, d_model]`."""
        return self.site(name).split(self.x_clean[name])

    def patch_nodes(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, err) at the patch values (zeros for a zero patch)."""
        if self.zero_patch:
            f, err = self.clean_nodes(name)
            return torch.zeros_like(f), torch.zeros_like(err)
        return self.site(name).split(self.x_patch[name])

    def deltas(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_patch - f_clean, err_patch - err_clean)."""
        (fc, ec), (fp, ep) = self.clean_nodes(name), self.patch_nodes(name)
        return fp - fc, ep - ec

    def aggregated(self, name: str, aggregation: str = "none") -> torch.Tensor:
        """`[seq, n_columns]` ("none") or `[n_columns]` summed over positions ("sum")."""
        check_aggregation(aggregation)
        e = self.effects[name]
        return e if aggregation == "none" else e.sum(0)

    @property
    def n_nodes(self) -> int:
        return sum(e.numel() for e in self.effects.values())


def check_aggregation(aggregation: str) -> None:
    if aggregation not in ("none", "sum"):
        raise ValueError(f"aggregation must be 'none' (a node per position) or 'sum' (summed over positions), got {aggregation!r}.")


def node_effects(
    model,
    saes,
    clean_tokens: torch.Tensor,
    patch_tokens: torch.Tensor | None,
    metric: Metric,
    *,
    method: str = "ig",
    steps: int = 10,
    kinds: Sequence[str] = SITE_KINDS,
    readout: str | None = None,
    batch_chunk: int = 32,
    batch_budget_mb: float | None = None,
    progress: bool | None = None,
) -> NodeEffects:
    """Effects of every SAE feature and error node at every site of `kinds` (plus the embedding).

    clean_tokens, patch_tokens: `[batch, seq]`; patch_tokens None patches every node to zero.
    metric(output) -> scalar: a differentiable mean over prompts of the logits (or of the `readout`
    hook's activation). method: "atp" (one forward and backward pass) or "ig" (`steps` passes per site).
    kinds: of `SITE_KINDS` ("resid" is read as "resid_post").
    batch_budget_mb: memory for each integrated-gradient pass (default: `iw.config.batch_budget_mb`);
    lower it to lower the peak, at the cost of more passes. progress: default `iw.config.progress`.
    """
    check_method(method, steps)
    if clean_tokens.ndim != 2:
        raise ValueError(f"clean_tokens must be [batch, seq], got shape {tuple(clean_tokens.shape)}.")
    if patch_tokens is not None and patch_tokens.shape != clean_tokens.shape:
        raise ValueError(f"patch_tokens {tuple(patch_tokens.shape)} must have the shape of clean_tokens {tuple(clean_tokens.shape)}.")
    sites = resolve_sites(model, saes, kinds)
    m_clean, x_clean, grads = passes.gradients(model, sites, clean_tokens, metric, readout=readout)
    if patch_tokens is None:
        x_patch = {s.name: s.zero_patch(x_clean[s.name]) for s in sites}
        m_patch = None
    else:
        out, x_patch = passes.site_activations(model, sites, patch_tokens, readout=readout)
        m_patch = float(check_metric(metric(out)))
    if method == "ig":
        for s in tqdm(sites, desc="integrated gradients", disable=not progress_enabled(progress), leave=False):
            grads[s.name] = passes.interpolated_gradient(model, s, clean_tokens, x_clean[s.name], x_patch[s.name], metric,
                                                         steps, readout=readout, batch_budget_mb=batch_budget_mb)
    result = NodeEffects(sites, method, steps if method == "ig" else None, {}, grads, x_clean, x_patch,
                         patch_tokens is None, m_clean, m_patch)
    with torch.no_grad():
        for s in sites:
            result.effects[s.name] = _site_effects(result, s, batch_chunk)
    return result


def _site_effects(result: NodeEffects, site: SAESite, batch_chunk: int) -> torch.Tensor:
    """`[seq, n_columns]`: sum over prompts of grad . delta for each feature and the error (chunked over
    prompts; in the SAE's dtype, at least float32)."""
    grad, x = result.grads[site.name], result.x_clean[site.name]
    like = site.to_sae(x[:1, :1])
    out = like.new_zeros(x.shape[1], site.n_columns, dtype=torch.promote_types(like.dtype, torch.float32))
    features, error = site.columns(out)
    for start in range(0, x.shape[0], batch_chunk):
        rows = slice(start, start + batch_chunk)
        fc, ec = site.split(x[rows])
        if result.zero_patch:
            fp, ep = torch.zeros_like(fc), torch.zeros_like(ec)
        else:
            fp, ep = site.split(result.x_patch[site.name][rows])
        g = site.to_sae(grad[rows])
        features += (site.feature_grad(g) * (fp - fc)).sum(0)
        error += (g * (ep - ec)).sum(-1).sum(0)
    return out
