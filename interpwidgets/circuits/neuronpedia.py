"""Attribution graphs in the graph JSON of circuit-tracer and Neuronpedia's graph viewer.

    data = iw.circuits.to_neuronpedia(g, "ioi.json", slug="ioi", scan="interpwidgets-teaching", saes=saes)
    g2 = iw.circuits.from_neuronpedia("ioi.json")        # an AttributionGraph (no model: prunes and scores only)

The file (circuit-tracer 0.5.0, `create_graph_files`) holds `metadata` (slug, scan, transcoder_list, prompt_tokens,
prompt, node_threshold, schema_version), `qParams` (pinnedIds, supernodes as `[name, node_id, ...]` lists,
linkType, clickedId, sg_pos), the pruned `nodes` and their `links` (`source`, `target`, `weight`: the direct
effect of source on target). Node ids, with `L` a layer, `p` a position:

    feature  "cross layer transcoder"    node_id "L_f_p"       feature cantor(L, f)   jsNodeId "L_f-0"
    error    "mlp reconstruction error"  node_id "0_L_p"       feature -1             jsNodeId "L_p-0"
    token    "embedding"                 node_id "E_t_p"       feature p              jsNodeId "E_t-p"   (t: token id)
    logit    "logit"                     node_id "{n_layers+1}_t_p"  feature t        jsNodeId "L_t-p"

with `influence` the node's cumulative influence share (`Pruning.cumulative`), `activation` a feature's activation,
`clerp` its label and, for logits, `token_prob` (the logit weight), `is_target_logit` (the most likely one) and the
clerp `Output "token" (p=0.123)`. circuit-tracer 0.5.0's error ids collide with layer-0 features ("0_2_5" is
both the error of layer 2 at position 5 and feature 2 of layer 0 there); when a graph would hold both, every error
is written as "L_-1_p" instead (circuit-tracer's later fix) and `metadata.info` says so.

What has no counterpart there, on export:
- bias nodes ("mlp2/bias", "logit/bias") are dropped with their links (their part of each node's input is left out);
- learned position embeddings ("pos_embed@p") are folded into the embedding node of their position: the weights of
  the two parallel links from "embed@p" and "pos_embed@p" into a node are summed;
- attention-SAE features and errors (graphs built with `attn_saes=True`) are refused: circuit-tracer's format has
  transcoder features only, and Neuronpedia's "lorsa" nodes are a different dictionary and layer numbering;
- logit targets other than single tokens (logit differences, directions) are refused for the same reason.
Without `pruning`, the graph is first laid out as circuit-tracer lays one out (`circuit_tracer_layout`) and pruned
there, so the file holds the nodes and links circuit-tracer's `prune_graph` keeps on the same graph; a `Pruning`
of the full graph (biases included) may be given instead.

On import, node types come from `feature_type`, edges from `links`, logit weights from `token_prob`; what the
graph does not model (each node's `influence`, file fields that differ from the ones derived, the file's metadata
and qParams) is kept in `metadata["neuronpedia"]`, so exporting an imported graph gives the file back.
Values are unknown there (NaN) and remainders zero.
"""

from __future__ import annotations

import ast
import json
from importlib import metadata
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import torch

from interpwidgets.circuits import influence as inf
from interpwidgets.circuits.attribution_graph import FORMAT, AttributionGraph, Pruning
from interpwidgets.circuits.graph import Node, node_id
from interpwidgets.models.files import read_json, write_text_atomic
from interpwidgets.sae.labels import feature_label

FEATURE_TYPES = {"cross layer transcoder": inf.FEATURE, "mlp reconstruction error": inf.ERROR,
                 "embedding": inf.TOKEN, "logit": inf.LOGIT}
RECORD = "neuronpedia"  # the metadata key holding what an imported file says beyond the graph
_NODE_KEYS = ("node_id", "feature", "layer", "ctx_idx", "feature_type")

Labels = Union[Callable[[Node], Optional[str]], Mapping[str, str]]


def cantor(x: int, y: int) -> int:
    """circuit-tracer's (and Neuronpedia's, schema_version 1) feature number of feature `y` of layer `x`."""
    return (x + y) * (x + y + 1) // 2 + y


# ---- circuit-tracer's layout ---------------------------------------------------------------------
def circuit_tracer_layout(graph: AttributionGraph) -> AttributionGraph:
    """The graph with circuit-tracer's nodes, in its order: features (by layer, position, feature), errors (by
    layer, position), token embeddings (by position), logits (in the graph's order). Bias nodes and their edges are dropped (what they
    gave a node moves into its `remainder`); each position embedding is folded into its position's token embedding
    (parallel edges summed). Edges are sorted by (target, source), as circuit-tracer lists its links."""
    return _layout(graph)[0]


def _layout(graph: AttributionGraph) -> tuple[AttributionGraph, torch.Tensor, torch.Tensor]:
    """`circuit_tracer_layout`, with where each old node went `[n]` and each old edge `[E]` (-1: dropped)."""
    _check_exportable(graph)
    embed_at = {n.position: i for i, n in enumerate(graph.nodes) if n.kind == "embed"}
    rank = {inf.FEATURE: 0, inf.ERROR: 1, inf.TOKEN: 2, inf.LOGIT: 3}
    order = sorted((i for i, n in enumerate(graph.nodes) if int(graph.node_type[i]) != inf.BIAS and n.kind != "pos_embed"),
                   key=lambda i: (rank[int(graph.node_type[i])], *_place(graph, i)) if int(graph.node_type[i]) != inf.LOGIT
                   else (rank[inf.LOGIT], i, 0, 0))  # logits keep their order (most likely first)
    new_of = torch.full((len(graph),), -1, dtype=torch.long)
    new_of[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    for i, n in enumerate(graph.nodes):
        if n.kind == "pos_embed":
            if n.position not in embed_at:
                raise ValueError(f"{n.id!r} has no token embedding node 'embed@{n.position}' to fold into.")
            new_of[i] = new_of[embed_at[n.position]]
    src, dst = new_of[graph.src], new_of[graph.dst]
    live = (src >= 0) & (dst >= 0)
    m = len(order)
    keys, edge_of = torch.unique(dst[live] * m + src[live], return_inverse=True)  # sorted by (target, source)
    weight = torch.zeros(len(keys), dtype=torch.float32).index_add_(0, edge_of, graph.weight[live].float())
    dropped = torch.zeros(len(graph), dtype=torch.float64).index_add_(0, graph.dst[~live], graph.weight[~live].double())
    index = torch.tensor(order, dtype=torch.long)
    edge_map = torch.full((len(graph.src),), -1, dtype=torch.long)
    edge_map[live] = edge_of
    supernodes = {}
    for name, members in graph.supernodes.items():
        kept = list(dict.fromkeys(graph.nodes[int(index[new_of[graph.index(x)]])].id for x in members
                                  if int(new_of[graph.index(x)]) >= 0))
        if kept:
            supernodes[name] = kept
    out = AttributionGraph(
        nodes=[graph.nodes[i] for i in order], node_type=graph.node_type[index].clone(),
        src=keys % m, dst=keys // m, weight=weight, values=graph.values[index].clone(),
        remainder=(graph.remainder.double() + dropped)[index].float(), logit_weights=graph.logit_weights[index].clone(),
        metadata=dict(graph.metadata), supernodes=supernodes)
    return out, new_of, edge_map


def _place(graph: AttributionGraph, i: int) -> tuple[int, int, int]:
    n = graph.nodes[i]
    return (n.layer, -1 if n.position is None else n.position, n.feature if isinstance(n.feature, int) else -1)


def _check_exportable(graph: AttributionGraph) -> None:
    for i, n in enumerate(graph.nodes):
        kind = int(graph.node_type[i])
        if kind in (inf.FEATURE, inf.ERROR) and n.kind != "mlp":
            raise ValueError(f"{n.id!r} is an attention-SAE node: circuit-tracer's graph JSON holds transcoder features "
                             "and MLP errors only. Build the graph with attn_saes=False to export it, or save it with "
                             "graph.to_json(path), which keeps every node.")
        if kind == inf.LOGIT and not isinstance(n.feature, int):
            raise ValueError(f"{n.id!r} is not a single-token logit target: circuit-tracer's graph JSON has a token per "
                             "logit node. Build the graph with token targets (the default) to export it.")


# ---- export --------------------------------------------------------------------------------------
def to_neuronpedia(
    graph: AttributionGraph,
    path: str | Path | None = None,
    *,
    slug: str | None = None,
    scan: str | None = None,
    pruning: Pruning | None = None,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    saes: Mapping[str, Any] | None = None,
    labels: Labels | None = None,
    tokenizer: Any = None,
    pinned: list[str] | None = None,
) -> dict[str, Any]:
    """The graph as a circuit-tracer / Neuronpedia graph file (see the module docstring); written atomically to
    `path` as JSON when given.

    slug, scan: the file's names (default: the imported file's, else from the prompt and the model name).
    pruning: a `Pruning` of this graph to export; default: circuit-tracer's pruning (`node_threshold`,
    `edge_threshold`) of `circuit_tracer_layout(graph)`, or, for a graph read from such a file, all of it.
    saes, labels: feature clerps from the dictionaries' labels (`feature_label`), or from `labels` (a callable
    `Node -> str | None` or a `{node id: text}` mapping); else "". tokenizer: a Hugging Face tokenizer or a model
    holding one, to decode logit tokens (default: the graph's model; else the token in the node's label).
    pinned: node ids for `qParams.pinnedIds` (default: `graph.metadata["pinned"]`).
    """
    record = graph.metadata.get(RECORD)
    if pruning is None and record is not None:
        layout, cumulative = graph, None
        node_mask = torch.ones(len(graph), dtype=torch.bool)
        edge_mask = torch.ones(len(graph.src), dtype=torch.bool)
        node_threshold = record.get("metadata", {}).get("node_threshold", node_threshold)
    else:
        layout, new_of, edge_map = _layout(graph)
        if pruning is None:
            p = inf.prune(layout.src, layout.dst, layout.weight, layout.node_type, layout.logit_weights,
                          node_threshold, edge_threshold)
            node_mask, edge_mask, cumulative = p.node_mask, p.edge_mask, p.cumulative
        else:
            if pruning.graph is not graph:
                raise ValueError("pruning belongs to another graph; pass graph.prune(...) of the graph you export.")
            node_threshold, edge_threshold = pruning.node_threshold, pruning.edge_threshold
            node_mask, edge_mask, cumulative = _moved_masks(layout, new_of, edge_map, pruning)
    overrides = (record or {}).get("nodes", {})
    if cumulative is None:
        kept = list(range(len(layout)))
    else:
        kept = _kept(layout, node_mask, edge_mask)
        overrides = {k: {f: v for f, v in o.items() if f != "influence"} for k, o in overrides.items()}
    nodes, ids, notes = _node_dicts(layout, kept, cumulative, overrides, saes, labels, tokenizer)
    links = [{"source": ids[s], "target": ids[d], "weight": w} for s, d, w in
             zip(layout.src[edge_mask].tolist(), layout.dst[edge_mask].tolist(), layout.weight[edge_mask].tolist())
             if s in ids and d in ids]
    out = {
        "metadata": _metadata(graph, record, slug, scan, node_threshold, edge_threshold, notes),
        "qParams": _qparams(graph, layout, record, ids, pinned),
        "nodes": nodes,
        "links": links,
    }
    if path is not None:
        write_text_atomic(path, json.dumps(out, indent=2))
    return out


def _moved_masks(layout: AttributionGraph, new_of: torch.Tensor, edge_map: torch.Tensor, pruning: Pruning):
    """A pruning of the full graph carried over to its circuit-tracer layout: a node or edge is kept there when
    something kept was moved onto it (a folded link keeps the sum of both parallel weights: the merged embedding's
    whole direct effect); a merged embedding keeps its token embedding's cumulative influence."""
    node_mask = torch.zeros(len(layout), dtype=torch.bool)
    moved = new_of >= 0
    node_mask[new_of[moved & pruning.node_mask]] = True
    edge_mask = torch.zeros(len(layout.src), dtype=torch.bool)
    kept = (edge_map >= 0) & pruning.edge_mask
    edge_mask[edge_map[kept]] = True
    cumulative = torch.zeros(len(layout), dtype=torch.float64)
    nodes = [i for i in range(len(new_of)) if moved[i] and pruning.graph.nodes[i].kind != "pos_embed"]
    cumulative[new_of[nodes]] = pruning.cumulative[nodes].double()
    return node_mask, edge_mask, cumulative


def _kept(layout, node_mask, edge_mask) -> list[int]:
    """The kept nodes circuit-tracer writes: those with a kept link, and every embedding and logit."""
    connected = torch.zeros(len(layout), dtype=torch.bool)
    connected[layout.src[edge_mask]] = True
    connected[layout.dst[edge_mask]] = True
    types = layout.node_type
    return (node_mask & (connected | (types == inf.TOKEN) | (types == inf.LOGIT))).nonzero()[:, 0].tolist()


def _node_dicts(layout, kept, cumulative, overrides, saes=None, labels=None, tokenizer=None):
    """The nodes `kept` (layout indices) as file nodes, their file ids `{layout index: node_id}`, and notes for
    metadata.info. `overrides`: per node id, file fields to write instead of the derived ones."""
    types = layout.node_type
    n_layers = int(layout.metadata.get("n_layers", 1 + max((n.layer for n in layout.nodes if n.kind == "mlp"), default=0)))
    token_ids = layout.metadata.get("token_ids") or []
    features = {f"0_{n.feature}_{n.position}" for i in kept for n in [layout.nodes[i]] if int(types[i]) == inf.FEATURE}
    collide = any(f"0_{layout.nodes[i].layer}_{layout.nodes[i].position}" in features
                  for i in kept if int(types[i]) == inf.ERROR)
    logits = [i for i in kept if int(types[i]) == inf.LOGIT]
    target = max(logits, key=lambda i: (float(layout.logit_weights[i]), -i)) if logits else None
    decode = _decoder(layout, tokenizer)
    nodes, ids = [], {}
    for i in kept:
        n, kind = layout.nodes[i], int(types[i])
        influence = None if cumulative is None or kind == inf.LOGIT else float(cumulative[i])
        if kind == inf.FEATURE:
            d = _node(f"{n.layer}_{n.feature}_{n.position}", cantor(n.layer, n.feature), str(n.layer), n.position,
                      "cross layer transcoder", f"{n.layer}_{n.feature}-0", influence=influence, activation=n.activation)
        elif kind == inf.ERROR:
            d = _node(f"{n.layer}_-1_{n.position}" if collide else f"0_{n.layer}_{n.position}", -1, str(n.layer),
                      n.position, "mlp reconstruction error", f"{n.layer}_{n.position}-0", influence=influence)
        elif kind == inf.TOKEN:
            token = token_ids[n.position] if n.position < len(token_ids) else -1
            d = _node(f"E_{token}_{n.position}", n.position, "E", n.position, "embedding", f"E_{token}-{n.position}",
                      influence=influence)
        else:
            prob = float(layout.logit_weights[i])
            d = _node(f"{n_layers + 1}_{n.feature}_{n.position}", n.feature, str(n_layers + 1), n.position, "logit",
                      f"L_{n.feature}-{n.position}", token_prob=prob, is_target_logit=i == target,
                      clerp=f'Output "{decode(n)}" (p={prob:.3f})')
        d.update(overrides.get(n.id, {}))
        clerp = _clerp(n, saes, labels) if kind == inf.FEATURE else None
        if clerp is not None:
            d["clerp"] = clerp
        nodes.append(d)
        ids[i] = d["node_id"]
    if len(set(ids.values())) != len(ids):
        raise ValueError("Two exported nodes share a node_id; the file's overrides in metadata['neuronpedia'] clash.")
    notes = []
    if collide:
        notes.append("error nodes are written as 'layer_-1_pos': circuit-tracer 0.5's '0_layer_pos' would collide "
                     "with layer-0 feature ids in this graph")
    return nodes, ids, notes


def _node(node_id_: str, feature: int, layer: str, ctx_idx: int, feature_type: str, js: str, *, token_prob: float = 0.0,
          is_target_logit: bool = False, clerp: str = "", influence: float | None = None,
          activation: float | None = None) -> dict[str, Any]:
    """One file node, its keys in circuit-tracer's order."""
    return {"node_id": node_id_, "feature": feature, "layer": layer, "ctx_idx": ctx_idx, "feature_type": feature_type,
            "token_prob": token_prob, "is_target_logit": is_target_logit, "run_idx": 0, "reverse_ctx_idx": 0,
            "jsNodeId": js, "clerp": clerp, "influence": influence, "activation": activation}


def _clerp(node: Node, saes, labels) -> str | None:
    if labels is not None:
        text = labels.get(node.id) if isinstance(labels, Mapping) else labels(node)
        return None if text is None else str(text)
    if saes is not None and node.dictionary is not None and node.dictionary in saes:
        return feature_label(saes[node.dictionary], int(node.feature)) or ""
    return None


def _decoder(graph: AttributionGraph, tokenizer: Any) -> Callable[[Node], str]:
    """The token text of a logit node: decoded, or read from its label (ours or circuit-tracer's clerp)."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if tokenizer is None and graph.linear is not None:
        tokenizer = getattr(graph.linear.model, "tokenizer", None)
    if tokenizer is not None:
        return lambda n: tokenizer.decode([int(n.feature)])

    def from_label(n: Node) -> str:
        ours = re.fullmatch(r"logit (.+) \(p=[0-9.]+\)", n.label)
        if ours:
            try:
                return str(ast.literal_eval(ours.group(1)))
            except (ValueError, SyntaxError):
                pass
        theirs = re.fullmatch(r'Output "(.*)" \(p=[0-9.]+\)', n.label, flags=re.S)
        return theirs.group(1) if theirs else f"#{n.feature}"

    return from_label


def _version() -> str:
    try:
        return metadata.version("interpwidgets")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def _metadata(graph, record, slug, scan, node_threshold, edge_threshold, notes) -> dict[str, Any]:
    md = graph.metadata
    if record is not None:
        out = dict(record.get("metadata", {}))
    else:
        out = {"slug": "", "scan": "", "transcoder_list": [], "prompt_tokens": list(md.get("prompt_tokens", [])),
               "prompt": md.get("prompt", ""), "node_threshold": node_threshold, "schema_version": 1}
        n_bias = int((graph.node_type == inf.BIAS).sum())
        folded = any(n.kind == "pos_embed" for n in graph.nodes)
        notes = ([f"{n_bias} bias node{'s' if n_bias != 1 else ''} and their links are left out (circuit-tracer has no bias nodes)"] if n_bias else []) + \
            (["position embeddings are folded into each position's embedding node (parallel link weights summed)"]
             if folded else []) + notes
        out["info"] = {"description": "Exported from interpwidgets" + (": " + "; ".join(notes) + "." if notes else "."),
                       "generator": {"name": "interpwidgets", "version": _version()}}
        if md.get("max_feature_nodes") is not None:
            out["generation_settings"] = {"max_feature_nodes": md["max_feature_nodes"]}
        out["pruning_settings"] = {"node_threshold": node_threshold, "edge_threshold": edge_threshold}
    out["slug"] = slug or out.get("slug") or _slug(md.get("prompt", "")) or "graph"
    out["scan"] = scan or out.get("scan") or md.get("model") or "unknown"
    return out


def _slug(prompt: str) -> str:
    text = re.sub(r"<\|[^|]*\|>", " ", prompt)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-")


def _qparams(graph, layout, record, ids, pinned) -> dict[str, Any]:
    """qParams: pinned ids and supernodes (members that are not in the file are left out), the rest as imported."""
    file_id = {layout.nodes[i].id: nid for i, nid in ids.items()}
    if layout is not graph:  # a folded position embedding stands for its token embedding
        file_id.update({n.id: file_id[f"embed@{n.position}"] for n in graph.nodes
                        if n.kind == "pos_embed" and f"embed@{n.position}" in file_id})
    q = dict((record or {}).get("qParams", {}))
    pins = graph.metadata.get("pinned", []) if pinned is None else pinned
    clicked = q.get("clickedId", "")
    supernodes = []
    for name, members in graph.supernodes.items():
        kept = list(dict.fromkeys(file_id[m] for m in members if m in file_id))
        if kept:
            supernodes.append([name, *kept])
    return {"pinnedIds": list(dict.fromkeys(file_id[p] for p in pins if p in file_id)), "supernodes": supernodes,
            "linkType": q.get("linkType", "both"), "clickedId": file_id.get(clicked, ""), "sg_pos": q.get("sg_pos", "")}


# ---- import --------------------------------------------------------------------------------------
def from_neuronpedia(source: str | Path | Mapping[str, Any]) -> AttributionGraph:
    """An `AttributionGraph` from a circuit-tracer / Neuronpedia graph file: its path, JSON text or parsed dict (see
    the module docstring). The graph has no model (`linear` is None): it prunes, scores, groups and exports."""
    data = _load(source)
    if data.get("format") == FORMAT:
        raise ValueError("This is interpwidgets' own attribution graph format; read it with AttributionGraph.from_json.")
    missing = [k for k in ("metadata", "nodes", "links") if k not in data]
    if missing:
        raise ValueError(f"Not a circuit-tracer / Neuronpedia graph file: it has no {missing} (keys: {sorted(data)[:8]}).")
    meta, raw_nodes, links = data["metadata"], data["nodes"], data["links"]
    qparams = data.get("qParams") or {}
    if not isinstance(meta, Mapping) or not isinstance(raw_nodes, list) or not isinstance(links, list):
        raise ValueError("A graph file's metadata must be an object and its nodes and links lists.")
    for key in ("prompt_tokens", "prompt"):
        if key not in meta:
            raise ValueError(f"The graph file's metadata has no {key!r}.")
    n_layers = _n_layers(raw_nodes)
    nodes, types, by_file_id, token_ids = [], [], {}, {}
    for k, raw in enumerate(raw_nodes):
        node, kind = _read_node(raw, k, n_layers, token_ids)
        if raw["node_id"] in by_file_id:
            raise ValueError(f"node_id {raw['node_id']!r} appears twice in the file, so its links are ambiguous "
                             "(circuit-tracer 0.5's error ids '0_layer_pos' collide with layer-0 feature ids).")
        by_file_id[raw["node_id"]] = k
        nodes.append(node)
        types.append(kind)
    src, dst, weight = [], [], []
    for j, link in enumerate(links):
        try:
            s, d, w = by_file_id[link["source"]], by_file_id[link["target"]], float(link["weight"])
        except KeyError as err:
            raise ValueError(f"links[{j}] lacks a field or names a node not in the file: {err}.") from None
        except (TypeError, ValueError):
            raise ValueError(f"links[{j}] has a weight that is not a number: {link.get('weight')!r}.") from None
        src.append(s), dst.append(d), weight.append(w)
    logit_weights = torch.zeros(len(nodes))
    for k, raw in enumerate(raw_nodes):
        if types[k] == inf.LOGIT:
            logit_weights[k] = float(raw.get("token_prob", 0.0))
    graph = AttributionGraph(
        nodes=nodes, node_type=torch.tensor(types, dtype=torch.int8), src=torch.tensor(src, dtype=torch.long),
        dst=torch.tensor(dst, dtype=torch.long), weight=torch.tensor(weight, dtype=torch.float32),
        values=torch.full((len(nodes),), math.nan), remainder=torch.zeros(len(nodes)), logit_weights=logit_weights,
        metadata={"prompt": meta["prompt"], "prompt_tokens": list(meta["prompt_tokens"]),
                  "token_ids": [token_ids.get(p, -1) for p in range(len(meta["prompt_tokens"]))],
                  "model": meta.get("scan", ""), "n_layers": n_layers,
                  "targets": [n.id for n, t in zip(nodes, types) if t == inf.LOGIT]})

    def ours(file_id: str, where: str) -> str:
        if file_id not in by_file_id:
            raise ValueError(f"qParams {where} names {file_id!r}, which is not a node of the file.")
        return nodes[by_file_id[file_id]].id

    for entry in qparams.get("supernodes", []):
        if not isinstance(entry, list) or len(entry) < 2 or not all(isinstance(x, str) for x in entry):
            raise ValueError(f"qParams supernodes must be lists [name, node_id, ...] of strings, got {entry!r}.")
        graph.supernodes[entry[0]] = list(dict.fromkeys(ours(x, f"supernode {entry[0]!r}") for x in entry[1:]))
    graph.metadata["pinned"] = [ours(x, "pinnedIds") for x in qparams.get("pinnedIds", [])]
    clicked = qparams.get("clickedId", "")
    rest = {k: v for k, v in qparams.items() if k not in ("pinnedIds", "supernodes")}
    if clicked:
        rest["clickedId"] = ours(clicked, "clickedId")
    derived = _node_dicts(graph, list(range(len(nodes))), None, {})[0]
    graph.metadata[RECORD] = {"metadata": dict(meta), "qParams": rest, "nodes": _overrides(raw_nodes, nodes, derived)}
    return graph


def _load(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    data = read_json(source, "graph")
    if not isinstance(data, dict):
        raise ValueError(f"{str(source)[:80]!r} holds a JSON {type(data).__name__}, not a graph object.")
    return data


def _n_layers(raw_nodes: list) -> int:
    """The model's layer count: logit nodes sit at layer n_layers + 1; else one past the deepest feature or error."""
    logit, other = [], [-1]
    for r in raw_nodes:
        if not isinstance(r, Mapping) or r.get("feature_type") not in FEATURE_TYPES or r.get("feature_type") == "embedding":
            continue
        try:
            (logit if r["feature_type"] == "logit" else other).append(int(r.get("layer")))
        except (TypeError, ValueError):
            raise ValueError(f"Node {r.get('node_id')!r} has layer {r.get('layer')!r}, not a layer number.") from None
    return max(logit) - 1 if logit else max(other) + 1


def _read_node(raw: Any, k: int, n_layers: int, token_ids: dict[int, int]) -> tuple[Node, int]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"nodes[{k}] is a {type(raw).__name__}, not an object.")
    missing = [key for key in _NODE_KEYS if key not in raw]
    if missing:
        raise ValueError(f"nodes[{k}] ({raw.get('node_id', '?')!r}) lacks {missing}.")
    ftype = raw["feature_type"]
    if ftype not in FEATURE_TYPES:
        raise ValueError(f"nodes[{k}] ({raw['node_id']!r}) has feature_type {ftype!r}; this reader knows "
                         f"{sorted(FEATURE_TYPES)} (circuit-tracer's transcoder graphs).")
    kind, pos, nid = FEATURE_TYPES[ftype], raw["ctx_idx"], str(raw["node_id"])
    if not isinstance(pos, int) or pos < 0:
        raise ValueError(f"nodes[{k}] ({nid!r}) has ctx_idx {pos!r}, not a position.")
    clerp = str(raw.get("clerp") or "")
    if kind == inf.TOKEN:
        token = _id_field(nid, 1, k)
        token_ids[pos] = token
        return Node(node_id("embed", 0, None, pos), 0, "embed", None, pos, clerp), kind
    if kind == inf.LOGIT:
        vocab = raw["feature"]
        if not isinstance(vocab, int):
            raise ValueError(f"nodes[{k}] ({nid!r}) is a logit whose feature {vocab!r} is not a token id.")
        return Node(node_id("logit", None, vocab, pos), n_layers, "logit", vocab, pos, clerp), kind
    layer = int(raw["layer"])
    if kind == inf.ERROR:
        return Node(node_id("mlp", layer, "error", pos), layer, "mlp", "error", pos, clerp), kind
    feature = _id_field(nid, 1, k)
    activation = raw.get("activation")
    return Node(node_id("mlp", layer, feature, pos), layer, "mlp", feature, pos, clerp, 0.0,
                None if activation is None else float(activation)), kind


def _id_field(nid: str, i: int, k: int) -> int:
    parts = nid.split("_")
    try:
        return int(parts[i])
    except (IndexError, ValueError):
        raise ValueError(f"nodes[{k}] has node_id {nid!r}; expected 'layer_feature_pos' or 'E_token_pos'.") from None


def _overrides(raw_nodes: list, nodes: list[Node], derived: list[dict]) -> dict[str, dict]:
    """Per node (our id), the file fields that differ from what export derives (e.g. influence, clerp)."""
    out = {}
    for raw, node, d in zip(raw_nodes, nodes, derived):
        diff = {k: v for k, v in raw.items() if k not in d or d[k] != v or type(d[k]) is not type(v)}
        if diff:
            out[node.id] = diff
    return out
