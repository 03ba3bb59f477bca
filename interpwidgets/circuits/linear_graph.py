"""Linear computation graphs (Ge et al. 2024): exact linear attribution with transcoders.

Replace every MLP by its transcoder (plus its error term, so the output is unchanged) and freeze the
attention patterns and every normalisation scale at their values on the prompt (the pre-attention and
pre-MLP norms, Gemma's post-attention and post-MLP sandwich norms, the final norm, and qk-norms).
Then every quantity read off the residual stream — a transcoder feature's pre-activation, an
attention-SAE feature's pre-activation, a logit or logit difference — is a linear function of

    the token embeddings (as the residual stream receives them: Gemma's sqrt(d_model) scaling
    included), learned position embeddings (none on rotary models: rotary positions act inside
    attention scores, which are frozen), each transcoder feature's activation, each transcoder's
    error, (optionally) each attention-output SAE feature and error, and the biases,

because the only nonlinearities left (feature activations) are inputs of the graph, not parts of
the paths. A path goes only through residual additions, frozen-pattern attention (the OV circuit)
and frozen-scale norms. So target = sum over inputs of value * d target / d value exactly
(Euler's theorem), which is how `LinearGraph.attribute` computes the contributions: one backward
pass through the frozen replacement model. `remainder` (target - sum) is zero up to float rounding.

The transcoder of layer L reads "blocks.L.ln2.hook_normalized" and writes "blocks.L.hook_mlp_out",
the value the residual stream receives from the MLP: on Gemma 2/3 that is after the post-MLP norm,
which the transcoder (with its error) therefore replaces along with the MLP. Models that soft-cap
their logits (Gemma 2: cap * tanh(logits / cap), not linear) are attributed at the logits before
the cap; such an `Attribution` says so (`pre_cap`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from interpwidgets.circuits.graph import Node, node_id, nodes_dataframe
from interpwidgets.circuits.passes import keeper, record
from interpwidgets.interventions.hooks import hooked
from interpwidgets.models.tokens import prompt_tokens, token_strings
from interpwidgets.sae.architectures import GatedSAE

TRANSCODER_HOOK = "blocks.{layer}.ln2.hook_normalized"
ATTN_SAE_HOOK = "blocks.{layer}.hook_attn_out"
_DICTIONARY_HOOKS = {"mlp": TRANSCODER_HOOK, "attn": ATTN_SAE_HOOK}  # the input hook a node's dictionary reads
PRE_CAP_LOGITS_HOOK = "unembed.hook_out"
# per-layer hooks recorded on the clean pass (where the model has them) and those it must have
_LAYER_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores", "attn.hook_cos", "attn.hook_sin",
                "ln2.hook_normalized", "hook_mlp_out", "hook_attn_out")
_REQUIRED_LAYER_HOOKS = ("attn.hook_pattern", "ln2.hook_normalized", "hook_mlp_out")
# bridge parts of a block, by the component whose bias node their biases join
_BLOCK_PARTS = {"ln1": "attn", "attn": "attn", "ln1_post": "attn", "ln2": "mlp", "mlp": "mlp", "ln2_post": "mlp"}


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
        component ("attn2/bias", "mlp1/bias", "logit/bias") over positions. Feature and error nodes name
        their dictionary (`Node.dictionary`: the transcoder's or attention SAE's input hook).
    pre_cap: True when the target is a logit (difference) of a model that soft-caps its logits
        (Gemma 2): `value` and the contributions are those of the logits before the cap.
    """

    target: Target
    value: float
    nodes: list[Node] = field(default_factory=list)
    pre_cap: bool = False

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
        """The nodes as a pandas DataFrame, largest |effect| first."""
        return nodes_dataframe(self.nodes)


class LinearGraph:
    """One prompt through the replacement model, ready for exact linear attributions.

    model: a TransformerBridge with separate attention and MLP per block (sequential or parallel),
    LayerNorm or RMSNorm, learned or rotary positions; saes: an SAESet (or dict keyed by input
    hook) with a transcoder at "blocks.L.ln2.hook_normalized" for every layer L, and optionally
    attention-output SAEs at "blocks.L.hook_attn_out" (used where present when `attn_saes`).
    tokens: `[seq]` or `[1, seq]` token ids, or a string (tokenised with BOS).
    Inputs are named in the place grammar: "embed", "pos_embed" (learned positions), "mlp{L}" (transcoder
    features and "mlp{L}/error"), "attn{L}" (attention-SAE features and "attn{L}/error").

    After construction: `logits_clean` (the model's logits) and `logits` (the replacement model's,
    equal up to rounding), both `[1, seq, vocab]`; `logits_pre_cap` (the unembedding's output,
    before the soft-cap) and `logit_soft_cap` on models that soft-cap their logits; `frozen`
    (hook name -> recorded pattern or norm scale); `qk` ("q{L}" `[1, seq, n_heads, d_head]`, "k{L}"
    `[1, seq, n_key_value_heads, d_head]`: queries and keys as the scores use them, after qk-norm
    and rotary, connected to the graph's inputs); `clean` (every recorded clean activation).
    """

    def __init__(self, model, saes, tokens, attn_saes: bool = True):
        self.model = model
        self.n_layers = model.cfg.n_layers
        self.logit_soft_cap = _logit_soft_cap(model)
        self.tokens = prompt_tokens(model, tokens)
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
        """Clean pass: patterns, norm scales, transcoder and SAE activations and errors."""
        self.logits_clean, store = record(self.model, self.tokens, _hooks_to_record(self.model))
        required = ["hook_embed"] + [f"blocks.{layer}.{h}" for layer in range(self.n_layers) for h in _REQUIRED_LAYER_HOOKS]
        missing = [n for n in required if n not in store]
        if missing:
            raise ValueError(f"This model lacks hooks a linear graph needs (or they did not fire): {missing}. It needs "
                             "blocks with separate attention and MLP (TransformerBridge hook names).")
        self.clean = store
        self.frozen = {n: v for n, v in store.items() if n.endswith(("hook_pattern", "hook_scale"))}
        self.values: dict[str, torch.Tensor] = {"embed": store["hook_embed"]}
        if "hook_pos_embed" in store:  # learned positions; rotary models have none
            self.values["pos_embed"] = store["hook_pos_embed"]
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
        self.biases = _bias_parameters(self.model, self.transcoders, self.attn_saes)
        unembedded: dict[str, torch.Tensor] = {}
        with _requiring_grad([p for _, p in self.biases]), torch.enable_grad():
            self.logits = self.run(self.leaves, self.pre, qk=self.qk, unembedded=unembedded)
        self._finish_qk()
        if self.logit_soft_cap is not None:
            self.logits_pre_cap = self._pre_cap_logits(unembedded.get("logits"))

    def run(self, leaves: dict[str, torch.Tensor], pre: dict[str, torch.Tensor] | None = None, *, batch: int = 1,
            inputs: dict[str, torch.Tensor] | None = None, qk: dict[str, torch.Tensor] | None = None,
            unembedded: dict[str, torch.Tensor] | None = None, stop_at: str | None = None) -> torch.Tensor | None:
        """The frozen replacement model on `leaves` (named like `values`, each `[batch, seq, ...]`): logits
        `[batch, seq, vocab]`. Fills `pre` with the dictionaries' pre-activations and `inputs` with their inputs
        (keyed "mlp2", "attn1"), `qk` with queries and keys and `unembedded["logits"]` with the logits before a
        soft-cap. Linear in the leaves and the biases. With `stop_at` (a hook name) the pass ends there: None."""
        def expand(v: torch.Tensor) -> torch.Tensor:
            return v if batch == 1 else v.expand(batch, *v.shape[1:])

        def reader(key: str, sae):
            def hook(x, hook):
                if inputs is not None:
                    inputs[key] = x
                if pre is not None:
                    pre[key] = sae.encode_pre(x)
                return x
            return hook

        hooks = [(hook, lambda x, hook, leaf=leaves[key]: leaf)
                 for hook, key in (("hook_embed", "embed"), ("hook_pos_embed", "pos_embed")) if key in leaves]
        hooks += [(name, lambda x, hook, v=v: expand(v)) for name, v in self.frozen.items()]
        for layer, tc in enumerate(self.transcoders):
            hooks.append((TRANSCODER_HOOK.format(layer=layer), reader(f"mlp{layer}", tc)))
            hooks.append((f"blocks.{layer}.hook_mlp_out", _rebuild(leaves, f"mlp{layer}", tc)))
            for name in ("q", "k", "rot_q", "rot_k"):
                if qk is not None and f"blocks.{layer}.attn.hook_{name}" in self.model.hook_dict:
                    hooks.append((f"blocks.{layer}.attn.hook_{name}", keeper(qk, f"{name}{layer}")))
        if self.logit_soft_cap is not None and unembedded is not None:
            hooks.append((PRE_CAP_LOGITS_HOOK, keeper(unembedded, "logits")))
        for layer, sae in self.attn_saes.items():
            hook, key = ATTN_SAE_HOOK.format(layer=layer), f"attn{layer}"
            hooks += [(hook, reader(key, sae)), (hook, _rebuild(leaves, key, sae))]
        if stop_at is not None:
            hooks.append((stop_at, _stop))
        tokens = expand(self.tokens)
        with hooked(self.model, hooks), warnings.catch_warnings():
            # the bridge warns that frozen norm scales reroute its norm computation: that is the point here
            warnings.filterwarnings("ignore", message="A forward hook edited hook_scale")
            try:
                return self.model(tokens)
            except _Stopped:
                return None

    def _finish_qk(self) -> None:
        """Leave in `qk` the queries and keys the scores use: rotated ones where the bridge exposes them,
        else rotate them here with the recorded rotary tables (the bridge's GPT-NeoX attention)."""
        for layer in range(self.n_layers):
            for side in ("q", "k"):
                rotated = self.qk.pop(f"rot_{side}{layer}", None)
                if rotated is not None:
                    self.qk[f"{side}{layer}"] = rotated
                elif f"blocks.{layer}.attn.hook_cos" in self.clean and f"{side}{layer}" in self.qk:
                    cos, sin = (self.clean[f"blocks.{layer}.attn.hook_{t}"] for t in ("cos", "sin"))
                    self.qk[f"{side}{layer}"] = _rotate_half(self.qk[f"{side}{layer}"], cos, sin)

    def _pre_cap_logits(self, pre: torch.Tensor | None) -> torch.Tensor:
        """The linear pass's logits before the soft-cap `[1, seq, vocab]`, checked against the capped ones."""
        cap = self.logit_soft_cap
        if pre is None or not torch.allclose(cap * torch.tanh(pre / cap), self.logits, atol=1e-4, rtol=1e-4):
            raise ValueError(f"This model soft-caps its logits (cap {cap}) but {PRE_CAP_LOGITS_HOOK!r} does not give the "
                             "logits before the cap; a linear graph cannot attribute its logits.")
        return pre

    # ---- targets -------------------------------------------------------------------------------
    def position(self, position: int) -> int:
        if not -self.seq <= position < self.seq:
            raise ValueError(f"position {position} is outside the prompt of {self.seq} tokens.")
        return position % self.seq

    def target_value(self, target: Target) -> torch.Tensor:
        """The target as a scalar tensor of the linear pass (connected to the graph's inputs)."""
        if isinstance(target, LogitTarget):
            p = self.position(target.position)
            row = (self.logits if self.logit_soft_cap is None else self.logits_pre_cap)[0, p]
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
            if "/" in key or not key.startswith(kind) or key in ("embed", "pos_embed"):
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
        return Attribution(target, float(scalar.detach()), nodes, pre_cap=self.is_pre_cap(target))

    def is_pre_cap(self, target: Target) -> bool:
        """Whether `target` is taken before the model's logit soft-cap (a logit target on a soft-capped model)."""
        return isinstance(target, LogitTarget) and self.logit_soft_cap is not None

    def node(self, kind: str, layer: int, feature, position: int | None, effect: float = 0.0) -> Node:
        return self._node((kind, layer, feature, position), effect)

    def _node(self, key: tuple, effect: float) -> Node:
        kind, layer, feature, position = key
        activation = None
        if isinstance(feature, int):
            activation = float(self.values[f"{kind}{layer}"][0, position, feature])
        nid = node_id(kind, layer if kind != "logit" else None, feature, position)
        label = nid.split("/")[0].split("@")[0]
        if feature is not None:
            label += f" #{feature}" if isinstance(feature, int) else f" {feature}"
        if position is not None:
            label += f" @{position} {self._token_id(int(self.tokens[0, position]))!r}"
        dictionary = _DICTIONARY_HOOKS[kind].format(layer=layer) if kind in _DICTIONARY_HOOKS and feature != "bias" else None
        return Node(nid, layer, kind, feature, position, label, effect, activation, dictionary)

    def target_node(self, target: Target, effect: float | None = None) -> Node:
        """The node standing for `target` in a circuit (kind "metric" for a logit target)."""
        value = float(self.target_value(target).detach()) if effect is None else effect
        if isinstance(target, LogitTarget):
            label = f"{'pre-cap logit' if self.is_pre_cap(target) else 'logit'} {self._token_id(target.answer)!r}"
            if target.wrong is not None:
                label += f" - {self._token_id(target.wrong)!r}"
            return Node("metric", self.n_layers, "metric", None, self.position(target.position), label, value)
        node = self._node((target.kind, target.layer, target.feature, self.position(target.position)), value)
        return node

    def _token_id(self, token: int) -> str:
        return token_strings(self.model, [token])[0]


def linear_graph(model, saes, tokens, attn_saes: bool = True) -> LinearGraph:
    """A `LinearGraph` of one prompt: transcoders in place of MLPs, attention patterns and norm
    scales frozen, ready for `.attribute(target)`, `hierarchical_attribution` and `qk_attribution`."""
    return LinearGraph(model, saes, tokens, attn_saes=attn_saes)


# ---- helpers -------------------------------------------------------------------------------------
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


def dictionary_site(key: str) -> tuple[int, str, str]:
    """(layer, hook it reads, hook it writes) of a graph's dictionary key: "mlp2" is layer 2's transcoder (reads
    ln2.hook_normalized, writes hook_mlp_out), "attn1" layer 1's attention-output SAE (reads and writes hook_attn_out)."""
    kind = "mlp" if key.startswith("mlp") else "attn"
    layer = int(key[len(kind):])
    if kind == "mlp":
        return layer, TRANSCODER_HOOK.format(layer=layer), f"blocks.{layer}.hook_mlp_out"
    return layer, ATTN_SAE_HOOK.format(layer=layer), ATTN_SAE_HOOK.format(layer=layer)


class _Stopped(Exception):
    """Ends a frozen pass early (`LinearGraph.run(stop_at=...)`)."""


def _stop(x, hook):
    raise _Stopped


def _rebuild(leaves: dict[str, torch.Tensor], key: str, sae):
    def hook(x, hook):
        return sae.decode(leaves[key]) + leaves[f"{key}/error"]
    return hook


def _leaf_identity(key: str) -> tuple[str, int, str | None]:
    """(kind, layer, "features" | "error" | None) of a leaf name like "mlp2", "attn1/error", "embed" (None: a
    vector-valued embedding leaf)."""
    if key in ("embed", "pos_embed"):
        return key, 0, None
    base, _, rest = key.partition("/")
    kind = "mlp" if base.startswith("mlp") else "attn"
    return kind, int(base[len(kind):]), ("error" if rest == "error" else "features")


def _hooks_to_record(model) -> list[str]:
    """Names of the hooks the clean pass records, among those the model has: embeddings, per-layer
    patterns, scores, rotary tables and dictionary sites, the unembedding's output, and every norm
    scale (one name per hook point)."""
    names = ["hook_embed", "hook_pos_embed", PRE_CAP_LOGITS_HOOK]
    names += [f"blocks.{layer}.{h}" for layer in range(model.cfg.n_layers) for h in _LAYER_HOOKS]
    scales: dict[int, str] = {}
    for name, point in model.hook_dict.items():
        if name.endswith(".hook_scale"):
            scales.setdefault(id(point), name)
    return [n for n in dict.fromkeys(names) if n in model.hook_dict] + list(scales.values())


def _logit_soft_cap(model) -> float | None:
    """The model's final-logit soft-cap (Gemma 2: logits = cap * tanh(pre-cap logits / cap)), or None."""
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    return float(cap) if cap is not None and cap > 0 else None


def _rotate_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of `x [1, seq, heads, d_head]` with tables `cos, sin [1, seq, r]`: the first r
    dimensions rotate in halves (GPT-NeoX / Llama convention), the others pass through."""
    r = cos.shape[-1]
    cos, sin = cos[:, :, None], sin[:, :, None]
    x_rot, x_pass = x[..., :r], x[..., r:]
    halves = torch.cat([-x_rot[..., r // 2:], x_rot[..., : r // 2]], dim=-1)
    return torch.cat([x_rot * cos + halves * sin, x_pass], dim=-1)


def _biases(module: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in module.named_parameters() if name.split(".")[-1].endswith("bias")]


def _model_biases(model) -> Iterator[tuple[tuple[str, int], str, torch.nn.Parameter]]:
    """(group, name, parameter) of the model's biases, grouped by the bridge's parts of each block:
    ln1, attn and ln1_post -> ("attn", L); ln2, mlp and ln2_post -> ("mlp", L); the parts outside the
    blocks (final norm, unembedding) -> ("logit", n_layers). Parallel blocks (GPT-NeoX) group the same
    way: ln2 is the MLP's own norm there."""
    n_layers = model.cfg.n_layers
    for layer, block in enumerate(model.blocks):
        for part, module in block.named_children():
            if part in _BLOCK_PARTS:
                yield from (((_BLOCK_PARTS[part], layer), f"blocks.{layer}.{part}.{n}", p) for n, p in _biases(module))
        yield from ((None, f"blocks.{layer}.{n}", p) for n, p in _biases(block))  # biases in no known part
    yield from ((("logit", n_layers), n, p) for n, p in _biases(model))


def _bias_parameters(model, transcoders, attn_saes) -> list[tuple[tuple[str, int], torch.nn.Parameter]]:
    """Every additive parameter, grouped by the component it belongs to: ("attn", L), ("mlp", L), ("logit", n_layers).

    Model biases are the parameters named "...bias" (see `_model_biases`); dictionaries contribute
    b_enc, b_dec and (gated) b_mag. Together with the leaves they make the frozen model homogeneous
    of degree one.
    """
    out, seen = [], set()
    for group, name, p in _model_biases(model):
        if id(p) in seen:
            continue
        if group is None:
            raise ValueError(f"The bias {name!r} lies outside the attention and MLP parts of its block; a linear graph "
                             "cannot tell which component it belongs to.")
        seen.add(id(p))
        out.append((group, p))
    for kind, dictionaries in (("mlp", dict(enumerate(transcoders))), ("attn", attn_saes)):
        for layer, sae in dictionaries.items():
            for p in [sae.b_enc, sae.b_dec] + ([sae.b_mag] if isinstance(sae, GatedSAE) else []):
                if id(p) not in seen:
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
