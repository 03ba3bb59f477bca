"""Linear computation graphs (Ge et al. 2024): exact linear attribution with transcoders.

Replace every MLP by its transcoder (plus its error term, so the output is unchanged) and freeze the
attention patterns and LayerNorm scales at their values on the prompt. Then every quantity read off
the residual stream — a transcoder feature's pre-activation, an attention-SAE feature's
pre-activation, a logit or logit difference — is a linear function of

    the token and position embeddings, each transcoder feature's activation, each transcoder's
    error, (optionally) each attention-output SAE feature and error, and the biases,

because the only nonlinearities left (feature activations) are inputs of the graph, not parts of
the paths. A path goes only through residual additions, frozen-pattern attention (the OV circuit)
and frozen-scale LayerNorms. So target = sum over inputs of value * d target / d value exactly
(Euler's theorem), which is how `LinearGraph.attribute` computes the contributions: one backward
pass through the frozen replacement model. `remainder` (target - sum) is zero up to float rounding.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from interpwidgets.circuits.graph import Node, node_id
from interpwidgets.circuits.runs import device_of
from interpwidgets.interventions.hooks import hooked

TRANSCODER_HOOK = "blocks.{layer}.ln2.hook_normalized"
ATTN_SAE_HOOK = "blocks.{layer}.hook_attn_out"
_LAYER_IN_NAME = re.compile(r"(?:^|\.)(?:layers|blocks|h|layer)\.(\d+)\.")


@dataclass(frozen=True)
class FeatureTarget:
    """The pre-activation of one feature: a transcoder's ("mlp") or an attention-output SAE's ("attn")."""

    kind: str
    layer: int
    feature: int
    position: int

    @property
    def id(self) -> str:
        return node_id(self.kind, self.layer, self.feature, self.position)


@dataclass(frozen=True)
class LogitTarget:
    """logit(answer) - logit(wrong) at `position` (just logit(answer) when wrong is None)."""

    answer: int
    wrong: int | None = None
    position: int = -1

    @property
    def id(self) -> str:
        return "metric"


Target = FeatureTarget | LogitTarget


@dataclass
class Attribution:
    """Contributions of the graph's inputs to one target; `sum(n.effect for n in nodes) + remainder == value`.

    nodes: one per input with a nonzero contribution (`effect`), with its value (`activation`: the
        feature activation; None for error, embedding and bias nodes). Biases are summed per
        component ("attn2/bias", "mlp1/bias", "logit/bias") over positions.
    """

    target: Target
    value: float
    nodes: list[Node] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(n.effect for n in self.nodes))

    @property
    def remainder(self) -> float:
        """value - total: float rounding only (the decomposition is exact)."""
        return self.value - self.total

    def top(self, k: int = 10) -> list[Node]:
        return sorted(self.nodes, key=lambda n: -abs(n.effect))[:k]

    def to_dataframe(self):
        import pandas as pd
        from dataclasses import asdict

        frame = pd.DataFrame([asdict(n) for n in self.nodes])
        if frame.empty:
            return frame
        return frame.reindex(frame["effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


class LinearGraph:
    """One prompt through the replacement model, ready for exact linear attributions.

    model: a TransformerBridge with LayerNorm or RMSNorm; saes: an SAESet (or dict keyed by input
    hook) with a transcoder at "blocks.L.ln2.hook_normalized" for every layer L, and optionally
    attention-output SAEs at "blocks.L.hook_attn_out" (used where present when `attn_saes`).
    tokens: `[seq]` or `[1, seq]` token ids, or a string (tokenised with BOS).
    """

    def __init__(self, model, saes, tokens, attn_saes: bool = True):
        self.model = model
        self.n_layers = model.cfg.n_layers
        self.tokens = _prompt_tokens(model, tokens)
        self.seq = self.tokens.shape[1]
        self.transcoders = _transcoders(model, saes)
        self.attn_saes = {}
        if attn_saes and saes is not None:
            for layer in range(self.n_layers):
                sae = saes.get(ATTN_SAE_HOOK.format(layer=layer))
                if sae is not None and not sae.is_transcoder:
                    self.attn_saes[layer] = sae
        self._record()
        self._build()

    # ---- the two passes ------------------------------------------------------------------------
    def _record(self) -> None:
        """Clean pass: patterns, LayerNorm scales, transcoder and SAE activations and errors."""
        store: dict[str, torch.Tensor] = {}
        names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"]
        for layer in range(self.n_layers):
            names += [f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.ln1.hook_scale", f"blocks.{layer}.ln2.hook_scale",
                      TRANSCODER_HOOK.format(layer=layer), f"blocks.{layer}.hook_mlp_out", ATTN_SAE_HOOK.format(layer=layer)]
        missing = [n for n in names if n not in self.model.hook_dict]
        if missing:
            raise ValueError(f"This model lacks hooks a linear graph needs: {missing}. It needs LayerNorm/RMSNorm "
                             "blocks with separate attention and MLP (TransformerBridge hook names).")

        def keep(name: str):
            def hook(x, hook):
                store[name] = x.detach()
                return x
            return hook

        with torch.no_grad(), hooked(self.model, [(n, keep(n)) for n in names]):
            self.logits_clean = self.model(self.tokens)
        self.frozen = {n: v for n, v in store.items() if n.endswith("hook_pattern") or n.endswith("hook_scale")}
        self.values: dict[str, torch.Tensor] = {"embed": store["hook_embed"], "pos": store["hook_pos_embed"]}
        with torch.no_grad():
            for layer, tc in enumerate(self.transcoders):
                acts = tc.encode(store[TRANSCODER_HOOK.format(layer=layer)])
                self.values[f"mlp{layer}"] = acts
                self.values[f"mlp{layer}/error"] = store[f"blocks.{layer}.hook_mlp_out"] - tc.decode(acts)
            for layer, sae in self.attn_saes.items():
                x = store[ATTN_SAE_HOOK.format(layer=layer)]
                f = sae.encode(x)
                self.values[f"attn{layer}"] = f
                self.values[f"attn{layer}/error"] = x - sae.decode(f)

    def _build(self) -> None:
        """Linear pass: frozen patterns and scales, dictionary outputs rebuilt from leaf inputs."""
        self.leaves = {k: v.clone().requires_grad_(True) for k, v in self.values.items()}
        self.pre: dict[str, torch.Tensor] = {}
        self.qk: dict[str, torch.Tensor] = {}
        hooks = [("hook_embed", lambda x, hook: self.leaves["embed"]), ("hook_pos_embed", lambda x, hook: self.leaves["pos"])]
        hooks += [(name, lambda x, hook, v=v: v) for name, v in self.frozen.items()]
        for layer, tc in enumerate(self.transcoders):
            hooks.append((TRANSCODER_HOOK.format(layer=layer), self._capture_pre(f"mlp{layer}", tc)))
            hooks.append((f"blocks.{layer}.hook_mlp_out", self._rebuild(f"mlp{layer}", tc)))
            for name in ("q", "k"):
                hooks.append((f"blocks.{layer}.attn.hook_{name}", self._capture_qk(f"{name}{layer}")))
        for layer, sae in self.attn_saes.items():
            hook = ATTN_SAE_HOOK.format(layer=layer)

            def attn_hook(x, hook, key=f"attn{layer}", sae=sae):
                self.pre[key] = sae.encode_pre(x)
                return self._rebuild(key, sae)(x, hook)

            hooks.append((hook, attn_hook))
        self.biases = _bias_parameters(self.model, self.transcoders, self.attn_saes)
        with _requiring_grad([p for _, p in self.biases]), torch.enable_grad(), hooked(self.model, hooks):
            self.logits = self.model(self.tokens)

    def _capture_pre(self, key: str, sae):
        def hook(x, hook):
            self.pre[key] = sae.encode_pre(x)
            return x
        return hook

    def _capture_qk(self, key: str):
        def hook(x, hook):
            self.qk[key] = x
            return x
        return hook

    def _rebuild(self, key: str, sae):
        def hook(x, hook):
            return sae.decode(self.leaves[key]) + self.leaves[f"{key}/error"]
        return hook

    # ---- targets -------------------------------------------------------------------------------
    def position(self, position: int) -> int:
        if not -self.seq <= position < self.seq:
            raise ValueError(f"position {position} is outside the prompt of {self.seq} tokens.")
        return position % self.seq

    def target_value(self, target: Target) -> torch.Tensor:
        """The target as a scalar tensor of the linear pass (connected to the graph's inputs)."""
        if isinstance(target, LogitTarget):
            p = self.position(target.position)
            row = self.logits[0, p]
            value = row[target.answer]
            return value - row[target.wrong] if target.wrong is not None else value
        if not isinstance(target, FeatureTarget):
            raise TypeError(f"target must be a FeatureTarget or LogitTarget, got {type(target).__name__}.")
        key = f"{target.kind}{target.layer}"
        if key not in self.pre:
            have = "transcoders" if target.kind == "mlp" else "attention-output SAEs"
            raise ValueError(f"No {target.kind!r} dictionary at layer {target.layer} in this graph (it has {have} "
                             f"at layers {sorted(int(k[len(target.kind):]) for k in self.pre if k.startswith(target.kind))}).")
        pre = self.pre[key]
        if not 0 <= target.feature < pre.shape[-1]:
            raise ValueError(f"feature {target.feature} is outside the dictionary's {pre.shape[-1]} features.")
        return pre[0, self.position(target.position), target.feature]

    def activation(self, target: FeatureTarget) -> float:
        """The feature's activation on the prompt."""
        return float(self.values[f"{target.kind}{target.layer}"][0, self.position(target.position), target.feature])

    def active_features(self, kind: str = "mlp", layer: int | None = None, position: int | None = None) -> list[FeatureTarget]:
        """Every active feature (activation != 0) of transcoders ("mlp") or attention SAEs ("attn")."""
        out = []
        for key, acts in self.values.items():
            if "/" in key or not key.startswith(kind) or key in ("embed", "pos"):
                continue
            lay = int(key[len(kind):])
            if layer is not None and lay != layer:
                continue
            for p, j in (acts[0] != 0).nonzero().tolist():
                if position is None or p == self.position(position):
                    out.append(FeatureTarget(kind, lay, j, p))
        return out

    # ---- attribution ---------------------------------------------------------------------------
    def gradients(self, output: torch.Tensor) -> tuple[dict[str, torch.Tensor | None], list[torch.Tensor | None]]:
        """d output / d (each input leaf, each bias parameter); a vector `output [d]` gives grads with a
        leading `[d]` dimension (one batched backward pass)."""
        keys = list(self.leaves)
        params = [p for _, p in self.biases]
        inputs = [self.leaves[k] for k in keys] + params
        with _requiring_grad(params):
            if output.ndim == 0:
                grads = torch.autograd.grad(output, inputs, retain_graph=True, allow_unused=True)
            else:
                eye = torch.eye(output.shape[0], dtype=output.dtype, device=output.device)
                grads = torch.autograd.grad(output, inputs, grad_outputs=eye, retain_graph=True,
                                            allow_unused=True, is_grads_batched=True)
        return dict(zip(keys, grads[: len(keys)])), list(grads[len(keys):])

    def contribution_table(self, output: torch.Tensor) -> tuple[list[tuple], torch.Tensor]:
        """Inputs with a nonzero contribution to `output` (a scalar or a vector `[d]`) as keys
        (kind, layer, feature, position), and their contributions `[n_inputs, d]` (d = 1 for a scalar)."""
        vector = output.reshape(-1) if output.ndim else output.reshape(1)
        leaf_grads, param_grads = self.gradients(vector if output.ndim else output)
        keys: list[tuple] = []
        rows: list[torch.Tensor] = []
        with torch.no_grad():
            for key, g in leaf_grads.items():
                if g is None:
                    continue
                g = g.reshape(len(vector), *self.values[key].shape)[:, 0]  # [d, seq, width]
                contrib = self.values[key][0][None] * g
                kind, layer, feature = _leaf_identity(key)
                if feature == "features":
                    where = contrib.ne(0).any(0).nonzero()
                    keys += [(kind, layer, j, p) for p, j in where.tolist()]
                    rows.append(contrib[:, where[:, 0], where[:, 1]].T)
                else:
                    per_pos = contrib.sum(-1)  # [d, seq]
                    where = per_pos.ne(0).any(0).nonzero()[:, 0]
                    keys += [(kind, layer, feature, p) for p in where.tolist()]
                    rows.append(per_pos[:, where].T)
            biases: dict[tuple, torch.Tensor] = {}
            for (group, p), g in zip(self.biases, param_grads):
                if g is not None:
                    c = (p[None] * g.reshape(len(vector), *p.shape)).reshape(len(vector), -1).sum(-1)
                    biases[group] = biases.get(group, 0) + c
            for (kind, layer), c in biases.items():
                if bool(c.ne(0).any()):
                    keys.append((kind, layer, "bias", None))
                    rows.append(c[None])
        table = torch.cat(rows) if rows else vector.new_zeros(0, len(vector))
        return keys, table.detach()

    def contributions(self, scalar: torch.Tensor) -> dict[tuple, float]:
        """`{(kind, layer, feature, position): contribution}` of every input with a nonzero one."""
        keys, table = self.contribution_table(scalar)
        return dict(zip(keys, table[:, 0].tolist()))

    def attribute(self, target: Target) -> Attribution:
        """Exact contributions of every input of the graph to `target` (see the module docstring)."""
        scalar = self.target_value(target)
        nodes = [self._node(key, c) for key, c in self.contributions(scalar).items()]
        return Attribution(target, float(scalar.detach()), nodes)

    def node(self, kind: str, layer: int, feature, position: int | None, effect: float = 0.0) -> Node:
        return self._node((kind, layer, feature, position), effect)

    def _node(self, key: tuple, effect: float) -> Node:
        kind, layer, feature, position = key
        activation = None
        if isinstance(feature, int):
            activation = float(self.values[f"{kind}{layer}"][0, position, feature])
        if kind in ("embed", "pos"):
            nid, label = node_id(kind, position=position), f"{kind} @{position} {self._token(position)!r}"
        else:
            nid = node_id(kind, layer if kind != "logit" else None, feature, position)
            what = f"#{feature}" if isinstance(feature, int) else feature
            label = f"{kind} {layer if kind != 'logit' else ''} {what}".replace("  ", " ")
            if position is not None:
                label += f" @{position} {self._token(position)!r}"
        return Node(nid, layer, kind, feature, position, label, effect, activation)

    def _token(self, position: int) -> str:
        tokenizer = getattr(self.model, "tokenizer", None)
        token = int(self.tokens[0, position])
        return tokenizer.decode([token]) if tokenizer is not None else str(token)

    def target_node(self, target: Target, effect: float | None = None) -> Node:
        """The node standing for `target` in a circuit (kind "metric" for a logit target)."""
        value = float(self.target_value(target).detach()) if effect is None else effect
        if isinstance(target, LogitTarget):
            label = f"logit {self._token_id(target.answer)!r}"
            if target.wrong is not None:
                label += f" - {self._token_id(target.wrong)!r}"
            return Node("metric", self.n_layers, "metric", None, self.position(target.position), label, value)
        node = self._node((target.kind, target.layer, target.feature, self.position(target.position)), value)
        return node

    def _token_id(self, token: int) -> str:
        tokenizer = getattr(self.model, "tokenizer", None)
        return tokenizer.decode([token]) if tokenizer is not None else str(token)


def linear_graph(model, saes, tokens, attn_saes: bool = True) -> LinearGraph:
    """A `LinearGraph` of one prompt: transcoders in place of MLPs, attention patterns and LayerNorm
    scales frozen, ready for `.attribute(target)`, `hierarchical_attribution` and `qk_attribution`."""
    return LinearGraph(model, saes, tokens, attn_saes=attn_saes)


# ---- helpers -------------------------------------------------------------------------------------
def _prompt_tokens(model, tokens) -> torch.Tensor:
    if isinstance(tokens, str):
        tokens = model.to_tokens(tokens)
    tokens = torch.as_tensor(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError(f"A linear graph is built for one prompt: tokens must be [seq] or [1, seq], got {tuple(tokens.shape)}.")
    return tokens.to(device_of(model))


def _transcoders(model, saes) -> list:
    out, missing = [], []
    for layer in range(model.cfg.n_layers):
        hook = TRANSCODER_HOOK.format(layer=layer)
        tc = saes.get(hook) if saes is not None else None
        if tc is None or not tc.is_transcoder:
            missing.append(hook)
            continue
        if tc.cfg.hook_name_out != f"blocks.{layer}.hook_mlp_out":
            raise ValueError(f"The transcoder at {hook!r} writes {tc.cfg.hook_name_out!r}; a linear graph needs it to write "
                             f"'blocks.{layer}.hook_mlp_out'.")
        out.append(tc)
    if missing:
        raise ValueError(
            f"A linear computation graph replaces every MLP by a transcoder; none found reading {missing}. "
            "Load the bundled ones (iw.sae.pretrained(model)) or train transcoders for those layers."
        )
    return out


def _leaf_identity(key: str) -> tuple[str, int, str]:
    """(kind, layer, "features" | "error" | "vector") of a leaf name like "mlp2", "attn1/error", "embed"."""
    if key in ("embed", "pos"):
        return key, 0, None
    base, _, rest = key.partition("/")
    kind = "mlp" if base.startswith("mlp") else "attn"
    return kind, int(base[len(kind):]), ("error" if rest == "error" else "features")


def _bias_parameters(model, transcoders, attn_saes) -> list[tuple[tuple[str, int], torch.nn.Parameter]]:
    """Every additive parameter, grouped by the component it belongs to: ("attn", L), ("mlp", L), ("logit", n_layers).

    Model biases are the parameters named "...bias"; dictionaries contribute b_enc, b_dec and (gated)
    b_mag. Together with the leaves they make the frozen model homogeneous of degree one.
    """
    n_layers = model.cfg.n_layers
    out, seen = [], set()
    for name, p in model.named_parameters():
        if not name.split(".")[-1].endswith("bias") or id(p) in seen:
            continue
        seen.add(id(p))
        match = _LAYER_IN_NAME.search(name)
        if match is None:
            out.append((("logit", n_layers), p))
            continue
        layer = int(match.group(1))
        is_mlp = any(s in name for s in ("mlp", "ln2", "ln_2", "post_attention_layernorm", "fc"))
        out.append((("mlp" if is_mlp else "attn", layer), p))
    for kind, dictionaries in (("mlp", dict(enumerate(transcoders))), ("attn", attn_saes)):
        for layer, sae in dictionaries.items():
            for pname in ("b_enc", "b_dec", "b_mag"):
                p = getattr(sae, pname, None)
                if isinstance(p, torch.nn.Parameter) and id(p) not in seen:
                    seen.add(id(p))
                    out.append(((kind, layer), p))
    return out


@contextlib.contextmanager
def _requiring_grad(params) -> Iterator[None]:
    """Temporarily make `params` require grad (restored afterwards), for frozen models."""
    frozen = [p for p in params if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
