"""Direct logit attribution: each component's direct effect on a logit difference at the last position.

The final residual stream is a sum of what each component wrote: the token embedding ("embed", Gemma's
sqrt(d_model) scaling included), the learned position embedding ("pos_embed"; none on rotary models), every
head's output z_h @ W_O_h ("L{l}H{h}"; W_O is per query head on grouped-query models), each layer's attention
output bias ("attn{l}.b_O", on models whose attention has a non-zero output bias) and each MLP's output
("mlp{l}"). With the final norm's scale frozen at its value in the real run the norm is affine, so

    logit(answer) - logit(wrong) = sum_c (ln_final(c) - ln_final(0)) . (W_U[:, answer] - W_U[:, wrong]) + bias

exactly (for LayerNorm, ln_final(c) - ln_final(0) = ((c - mean(c)) / scale) * w_ln); "bias" holds the constant
terms (ln_final's bias . d, b_U[answer] - b_U[wrong]). Gemma's post-attention norm (ln1_post) sits between the
heads and the residual stream; its scale is frozen the same way, so heads still add up to the attention output.
Models that soft-cap their logits (Gemma 2) are attributed at the logits before the cap (`pre_cap`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interpwidgets.config import progress_enabled
from interpwidgets.interventions import ablate, check_ablation, hooked, parse_components
from interpwidgets.lens.logit_lens import logit_soft_cap, token_id
from interpwidgets.models.device import device_of
from interpwidgets.models.tokens import prompt_tokens, token_strings, top_tokens
from interpwidgets.patching.result import CELL_ABLATIONS, Outcome
from interpwidgets.tasks.base import Task
from interpwidgets.tasks.metric import check_finite, check_metric

KINDS = ("embed", "pos_embed", "head", "attn_bias", "mlp", "bias")
"""The kinds of component a DLAResult lists."""
PRE_CAP_LOGITS_HOOK = "unembed.hook_out"
TOO_LONG = "Direct logit attribution reads prompts that fit the model's context; shorten it."
_SCALE_EDIT_WARNING = "A forward hook edited hook_scale"


@dataclass
class DLAResult:
    """Direct effects of every component on one direction of the logits, at each prompt's last position.

    labels / kinds: [component] place names ("embed", "pos_embed", "L1H2", "attn1.b_O", "mlp1", "bias") and their
    kinds (see KINDS). values: [prompt, component] float32 direct effects (CPU); each row sums to `logit_diff`
    (float32 rounding). logit_diff: [prompt] the model's real logit(answer) - logit(wrong) (or logit(answer) alone),
    before the soft-cap when `pre_cap`. answers / wrongs: [prompt] the token ids (wrongs None without a wrong token).
    """

    labels: list[str]
    kinds: list[str]
    values: torch.Tensor
    logit_diff: torch.Tensor
    n_layers: int
    n_heads: int
    direction: str
    model: Any = field(repr=False)
    tokens: torch.Tensor = field(repr=False)
    task: Task | None = field(repr=False)
    answers: torch.Tensor = field(default=None, repr=False)
    wrongs: torch.Tensor | None = field(default=None, repr=False)
    pre_cap: bool = False

    @property
    def n_prompts(self) -> int:
        return self.values.shape[0]

    @property
    def heads(self) -> torch.Tensor:
        """[layer, head] each head's direct effect, mean over prompts."""
        columns = [i for i, kind in enumerate(self.kinds) if kind == "head"]
        return self.mean[columns].reshape(self.n_layers, self.n_heads)

    @property
    def mean(self) -> torch.Tensor:
        """[component] the direct effects, mean over prompts."""
        return self.values.mean(0)

    def by_layer(self) -> dict[str, torch.Tensor]:
        """{"attn": [layer] heads plus attention output bias, "mlp": [layer] MLP output} means over prompts
        (zeros for a model without MLPs)."""
        attn, mlp = torch.zeros(self.n_layers), torch.zeros(self.n_layers)
        for label, kind, value in zip(self.labels, self.kinds, self.mean.tolist()):
            if kind in ("head", "attn_bias"):
                attn[_layer_of(label)] += value
            elif kind == "mlp":
                mlp[_layer_of(label)] += value
        return {"attn": attn, "mlp": mlp}

    def to_dataframe(self):
        """A long pandas DataFrame: one row per (prompt, component) with `prompt`, `component`, `kind`, `layer`
        (missing outside the blocks), `head` (missing except for heads) and `value`."""
        import pandas as pd

        rows = []
        for p in range(self.n_prompts):
            for c, (label, kind) in enumerate(zip(self.labels, self.kinds)):
                layer = _layer_of(label) if kind in ("head", "attn_bias", "mlp") else None
                head = int(label.split("H")[1]) if kind == "head" else None
                rows.append((p, label, kind, layer, head, float(self.values[p, c])))
        frame = pd.DataFrame(rows, columns=["prompt", "component", "kind", "layer", "head", "value"])
        return frame.astype({"layer": "Int64", "head": "Int64"})

    def plot(self, ax=None):
        """A layer x head heatmap of the heads' mean direct effects and bars of every other component, both on a
        diverging colour scale centred on zero. `ax`: None (a new figure), one Axes (the heatmap only) or a pair
        (heatmap, bars). Returns the Axes drawn on (a tuple of two without a single `ax`)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(1, 2, figsize=(11, max(3.0, 0.5 * self.n_layers + 1.5)),
                                 gridspec_kw={"width_ratios": [max(self.n_heads, 3), 4]})
        axes = tuple(np.atleast_1d(ax))
        heads = self.heads.numpy()
        bound = float(np.abs(self.mean.numpy()).max()) or 1.0
        image = axes[0].imshow(heads, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto", origin="lower")
        axes[0].set_xticks(range(self.n_heads), [f"H{h}" for h in range(self.n_heads)])
        axes[0].set_yticks(range(self.n_layers), [f"L{layer}" for layer in range(self.n_layers)])
        axes[0].set_xlabel("head")
        axes[0].set_ylabel("layer")
        axes[0].set_title("direct effect of each head")
        axes[0].figure.colorbar(image, ax=axes[0], label=self.direction)
        if len(axes) > 1:
            others = [(label, value) for label, kind, value in zip(self.labels, self.kinds, self.mean.tolist()) if kind != "head"]
            labels, values = zip(*others)
            colours = plt.get_cmap("RdBu")((np.array(values) / bound + 1) / 2)
            axes[1].barh(range(len(values)), values, color=colours, edgecolor="grey")
            axes[1].set_yticks(range(len(values)), labels)
            axes[1].invert_yaxis()
            axes[1].axvline(0.0, color="grey", linewidth=0.8)
            axes[1].set_xlim(-bound * 1.05, bound * 1.05)
            axes[1].set_xlabel(f"direct effect on {self.direction}")
            axes[1].set_title("other components")
        return axes if len(axes) > 1 else axes[0]

    def intervene(self, components, *, ablation: str = "zero") -> Outcome:
        """Ablate `components` ("L1H2", "mlp3", any name `parse_component` reads, or Components) together on this
        result's prompts, in one forward. ablation "zero", or "mean" (over the task's corrupt prompts when there is
        a task, else over this result's prompts). The metric is the mean of the same logit difference."""
        check_ablation(ablation, CELL_ABLATIONS)
        parsed = parse_components(components, self.model)
        reference = None if ablation == "zero" else (self.task.corrupt_tokens if self.task is not None else self.tokens)
        if reference is not None:
            reference = reference.to(device_of(self.model))
        intervention = ablate(self.model, parsed, ablation=ablation, reference=reference)
        before_logits, before = self._run([])
        after_logits, after = self._run(intervention.fwd_hooks)
        return Outcome(
            ablation=ablation,
            components=[c.label for c in parsed],
            base="clean",
            metric_before=float(check_metric(before.mean(), where="logit difference")),
            metric_after=float(check_metric(after.mean(), where="logit difference")),
            top_before=top_tokens(self.model, before_logits[0, -1], k=5),
            top_after=top_tokens(self.model, after_logits[0, -1], k=5),
        )

    def _run(self, fwd_hooks) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [prompt, seq, vocab], the per-prompt logit difference [prompt]) of one forward under `fwd_hooks`."""
        kept: dict[str, torch.Tensor] = {}

        def keep(act, hook):
            kept["pre_cap"] = act
            return act

        hooks = list(fwd_hooks) + ([(PRE_CAP_LOGITS_HOOK, keep)] if self.pre_cap else [])
        with torch.no_grad(), hooked(self.model, hooks):
            logits = self.model(self.tokens.to(device_of(self.model)))
        read = kept["pre_cap"] if self.pre_cap else logits
        return logits, _difference(read[:, -1].float(), self.answers, self.wrongs).cpu()


def _layer_of(label: str) -> int:
    """The layer of "L3H1", "attn3.b_O" or "mlp3"."""
    digits = label[1:].split("H")[0] if label.startswith("L") else label.removeprefix("attn").removeprefix("mlp")
    return int(digits.split(".")[0])


def _difference(last: torch.Tensor, answers: torch.Tensor, wrongs: torch.Tensor | None) -> torch.Tensor:
    """[prompt] logit(answer) - logit(wrong) (or logit(answer)) from last-position logits [prompt, vocab]."""
    answers = answers.to(last.device)
    value = last.gather(1, answers[:, None])[:, 0]
    if wrongs is not None:
        value = value - last.gather(1, wrongs.to(last.device)[:, None])[:, 0]
    return value


def _inputs(model, task_or_prompt, answer, wrong):
    """(tokens [prompt, seq], answers [prompt], wrongs [prompt] or None, task or None, direction text)."""
    device = device_of(model)
    if isinstance(task_or_prompt, Task):
        if answer is not None or wrong is not None:
            raise ValueError(
                "A task brings its own answers and wrong tokens (task.answer_tokens, task.wrong_tokens); "
                "pass either a task or a prompt with answer= (and wrong=), not both."
            )
        task = task_or_prompt
        if len(task) == 0:
            raise ValueError("The task has no prompts.")
        return (task.clean_tokens.to(device), task.answer_tokens.long().cpu(), task.wrong_tokens.long().cpu(), task,
                "logit(answer) - logit(wrong)")
    if answer is None:
        raise ValueError(
            "A prompt needs answer= (the token whose logit to attribute, a one-token string or an id), and "
            "optionally wrong= (then the direction is logit(answer) - logit(wrong)); or pass a Task."
        )
    tokens = prompt_tokens(model, task_or_prompt, too_long=TOO_LONG)
    a = token_id(model, answer)
    w = token_id(model, wrong) if wrong is not None else None
    name = lambda i: repr(token_strings(model, [i])[0])  # noqa: E731
    direction = f"logit({name(a)})" + (f" - logit({name(w)})" if w is not None else "")
    return tokens, torch.tensor([a]), (torch.tensor([w]) if w is not None else None), None, direction


def _output_bias(model, layer: int) -> torch.Tensor | None:
    """blocks[layer]'s attention output bias [d_model], or None where the model has none."""
    try:
        bias = model.blocks[layer].attn.b_O
    except (AttributeError, ValueError, RuntimeError):
        return None
    return None if bias is None else bias.detach()


def _frozen_norm(model, name: str, module, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(module(x) - module(0), module(0)) for x [prompt, n, d] through the norm `name` with its scale frozen at
    `scale` [prompt, 1]: the norm's linear part applied to each of the n vectors, and its constant."""
    frozen = scale[:, None, :]  # [prompt, 1, 1]

    def freeze(act, hook):
        return frozen.expand_as(act).to(act.dtype)

    stacked = torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)
    with warnings.catch_warnings(), hooked(model, [(f"{name}.hook_scale", freeze)]):
        warnings.filterwarnings("ignore", message=_SCALE_EDIT_WARNING)  # freezing the scale is the point here
        out = module(stacked)
    return out[:, :-1] - out[:, -1:], out[:, -1]


@torch.no_grad()
def direct_logit_attribution(
    model,
    task_or_prompt: Task | str | torch.Tensor | Sequence[int],
    answer: int | str | None = None,
    wrong: int | str | None = None,
    *,
    progress: bool | None = None,
) -> DLAResult:
    """Every component's direct effect on logit(answer) - logit(wrong) at the last position, final-norm scale frozen.

    task_or_prompt: a Task (its clean prompts, answer and wrong tokens, per prompt), or one prompt (text, or token
    ids [n] / [1, n]) with `answer` (a one-token string or an id) and optionally `wrong` (None: logit(answer) alone).
    """
    tokens, answers, wrongs, task, direction = _inputs(model, task_or_prompt, answer, wrong)
    cfg, n_layers, n_heads = model.cfg, model.cfg.n_layers, model.cfg.n_heads
    pre_cap = logit_soft_cap(model) is not None
    has_pos = cfg.positional_embedding_type == "standard" and "hook_pos_embed" in model.hook_dict
    has_mlp = f"blocks.{n_layers - 1}.hook_mlp_out" in model.hook_dict
    post_attn_norm = all(hasattr(block, "ln1_post") for block in model.blocks)
    biases = [_output_bias(model, layer) for layer in range(n_layers)]
    has_bias = any(b is not None and bool((b != 0).any()) for b in biases)
    wanted = {"hook_embed", "ln_final.hook_scale", PRE_CAP_LOGITS_HOOK} | ({"hook_pos_embed"} if has_pos else set())
    for layer in range(n_layers):
        wanted |= {f"blocks.{layer}.attn.hook_z"} | ({f"blocks.{layer}.hook_mlp_out"} if has_mlp else set())
        wanted |= {f"blocks.{layer}.ln1_post.hook_scale"} if post_attn_norm else set()

    bar = tqdm(total=n_layers + 2, desc="direct logit attribution", delay=1.0, leave=False,
               disable=not progress_enabled(progress))
    with bar:
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in wanted)
        bar.update()
        parts, labels, kinds = [cache["hook_embed"][:, -1]], ["embed"], ["embed"]
        if has_pos:
            parts, labels, kinds = parts + [cache["hook_pos_embed"][:, -1]], labels + ["pos_embed"], kinds + ["pos_embed"]
        constant = torch.zeros_like(parts[0])  # [prompt, d_model] the residual's constant terms (post-norm biases)
        for layer in range(n_layers):
            z = cache[f"blocks.{layer}.attn.hook_z"][:, -1]  # [prompt, head, d_head]
            heads = torch.einsum("phd,hdm->phm", z, model.W_O[layer].to(z.dtype))  # [prompt, head, d_model]
            bias = biases[layer] if has_bias else None
            if bias is not None:
                heads = torch.cat([heads, bias.to(heads)[None, None].expand(len(heads), 1, -1)], dim=1)
            if post_attn_norm:
                scale = cache[f"blocks.{layer}.ln1_post.hook_scale"][:, -1]
                heads, const = _frozen_norm(model, f"blocks.{layer}.ln1_post", model.blocks[layer].ln1_post, heads, scale)
                constant = constant + const
            parts += list(heads.unbind(1))
            labels += [f"L{layer}H{h}" for h in range(n_heads)] + ([f"attn{layer}.b_O"] if bias is not None else [])
            kinds += ["head"] * n_heads + (["attn_bias"] if bias is not None else [])
            if has_mlp:
                parts.append(cache[f"blocks.{layer}.hook_mlp_out"][:, -1])
                labels.append(f"mlp{layer}")
                kinds.append("mlp")
            bar.update()
        for label, part in zip(labels, parts):  # in forward order: the first component that wrote a NaN/inf
            check_finite(part, f"The direct contribution of {label} at the last position", dims=("prompt",))
        stack = torch.stack(parts + [constant], dim=1)  # [prompt, component + 1, d_model]
        linear, offset = _frozen_norm(model, "ln_final", model.ln_final, stack, cache["ln_final.hook_scale"][:, -1])
        w_u, b_u = model.W_U, model.b_U
        device = w_u.device
        unembed_dir = w_u[:, answers.to(device)].T  # [prompt, d_model]
        bias_dir = b_u[answers.to(device)] if b_u is not None else torch.zeros(len(answers), device=device)
        if wrongs is not None:
            unembed_dir = unembed_dir - w_u[:, wrongs.to(device)].T
            bias_dir = bias_dir - (b_u[wrongs.to(device)] if b_u is not None else 0.0)
        effects = torch.einsum("pcm,pm->pc", linear.float(), unembed_dir.float())  # [prompt, component + 1]
        bias_effect = effects[:, -1] + (offset.float() * unembed_dir.float()).sum(-1) + bias_dir.float()
        values = torch.cat([effects[:, :-1], bias_effect[:, None]], dim=1).cpu()
        real = _difference(cache[PRE_CAP_LOGITS_HOOK][:, -1].float(), answers, wrongs).cpu()
        bar.update()
    if pre_cap:
        direction = f"pre-cap {direction}"
    return DLAResult(
        labels=labels + ["bias"], kinds=kinds + ["bias"], values=values, logit_diff=real, n_layers=n_layers,
        n_heads=n_heads, direction=direction, model=model, tokens=tokens.cpu(), task=task, answers=answers,
        wrongs=wrongs, pre_cap=pre_cap,
    )
