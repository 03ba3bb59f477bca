"""The circuit-tracer fixture: the teaching model's attribution graph of one IOI prompt, written by circuit-tracer.

circuit-tracer pins transformer-lens < 4, so it cannot share our environment: the graph is built here (stage 1)
and handed to circuit-tracer 0.5.0 in a separate virtual environment outside the repository (stage 2).

    # stage 1, in the project's environment: build/circuit_tracer/ioi_graph.pt
    .venv/bin/python scripts/release/make_circuit_tracer_fixture.py graph

    # stage 2, once: a separate environment (CPU torch first, so pip does not pull CUDA wheels)
    python -m venv ../circuit-tracer-venv
    ../circuit-tracer-venv/bin/pip install torch==2.13.0
    ../circuit-tracer-venv/bin/pip install circuit-tracer==0.5.0
    # stage 2: circuit-tracer's files into tests/fixtures/circuit_tracer/
    ../circuit-tracer-venv/bin/python scripts/release/make_circuit_tracer_fixture.py tracer

Stage 1 lays the graph out as circuit-tracer's `Graph` holds one (`circuit_tracer_layout`: the dense adjacency
`[target, source]` over [features, errors, tokens, logits], bias nodes dropped, position embeddings folded into the
token embeddings) and saves it with `active_features`, `selected_features`, `activation_values`, the logit targets
and probabilities, the input tokens and the config fields circuit-tracer reads, as plain tensors and lists.

Stage 2 builds circuit-tracer's `Graph` from that file and writes, under tests/fixtures/circuit_tracer/:
- ioi.json: `create_graph_files(graph, "ioi", ..., node_threshold=0.8, edge_threshold=0.98)`, the pruned graph file;
- ioi_prune.json: circuit-tracer's `prune_graph` masks on the dense graph (kept node indices, kept edges as
  [target, source] index pairs), its cumulative influence of every node, and `compute_graph_scores`.
The dense graph itself (about 21 MB) is not committed: the tests rebuild it from the token ids in ioi.json.
The tokenizer is the teaching tokenizer, copied to a temporary folder with `tokenizer_class` set to
"PreTrainedTokenizerFast" (the class name older `transformers` releases know).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPH_PT = ROOT / "build" / "circuit_tracer" / "ioi_graph.pt"
FIXTURES = ROOT / "tests" / "fixtures" / "circuit_tracer"
TOKENIZER = ROOT / "interpwidgets" / "assets" / "teaching" / "tokenizer"
PROMPT = "When Mary and John went to the store, John gave a drink to"
SLUG, SCAN = "ioi", "interpwidgets-teaching"
NODE_THRESHOLD, EDGE_THRESHOLD = 0.8, 0.98


def stage_graph(out: Path) -> None:
    """Stage 1 (our environment): the attribution graph in circuit-tracer's Graph layout, saved to `out`."""
    import torch

    import interpwidgets as iw
    from interpwidgets.circuits import influence as inf
    from interpwidgets.circuits.neuronpedia import circuit_tracer_layout

    torch.manual_seed(0)
    model = iw.load_model(device="cpu")
    graph = iw.circuits.attribution_graph(model, iw.sae.pretrained(model), PROMPT, progress=False)
    layout = circuit_tracer_layout(graph)
    n, seq, n_layers = len(layout), len(graph.metadata["token_ids"]), model.cfg.n_layers
    types = layout.node_type
    features = [node for node, t in zip(layout.nodes, types.tolist()) if t == inf.FEATURE]
    logits = layout.of_type("logit")
    expected = [inf.FEATURE] * len(features) + [inf.ERROR] * (n_layers * seq) + [inf.TOKEN] * seq + [inf.LOGIT] * len(logits)
    if types.tolist() != expected:
        raise RuntimeError("The layout is not circuit-tracer's [features, errors, tokens, logits].")
    adjacency = torch.zeros(n, n, dtype=torch.float32)
    adjacency[layout.dst, layout.src] = layout.weight
    tokenizer = model.tokenizer
    cfg = model.cfg
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "input_string": graph.metadata["prompt"],
        "input_tokens": torch.tensor(graph.metadata["token_ids"]),
        "active_features": torch.tensor([[f.layer, f.position, f.feature] for f in features], dtype=torch.long),
        "selected_features": torch.arange(len(features)),
        "activation_values": torch.tensor([f.activation for f in features], dtype=torch.float32),
        "adjacency_matrix": adjacency,
        "logit_targets": [(tokenizer.decode([layout.nodes[i].feature]), layout.nodes[i].feature) for i in logits.tolist()],
        "logit_probabilities": layout.logit_weights[logits].clone(),
        "vocab_size": cfg.d_vocab,
        "cfg": {"n_layers": n_layers, "d_model": cfg.d_model, "d_head": cfg.d_head, "n_heads": cfg.n_heads,
                "d_mlp": cfg.d_mlp, "d_vocab": cfg.d_vocab, "model_name": SCAN,
                "original_architecture": getattr(cfg, "original_architecture", None) or "interpwidgets-teaching"},
        "scan": SCAN,
    }, out)
    print(f"{out}: {n} nodes ({len(features)} features, {n_layers * seq} errors, {seq} tokens, {len(logits)} logits), "
          f"{len(layout.src)} edges")


def stage_tracer(graph_pt: Path, fixtures: Path) -> None:
    """Stage 2 (circuit-tracer's environment): its graph file, prune masks and scores of the stage-1 graph."""
    import torch
    from circuit_tracer.attribution.targets import LogitTarget
    from circuit_tracer.graph import Graph, compute_graph_scores, prune_graph
    from circuit_tracer.utils.create_graph_files import create_graph_files
    from circuit_tracer.utils.tl_nnsight_mapping import UnifiedConfig

    data = torch.load(graph_pt, weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = Path(tmp) / "tokenizer"
        shutil.copytree(TOKENIZER, tokenizer)
        config = json.loads((tokenizer / "tokenizer_config.json").read_text())
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        (tokenizer / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        cfg = UnifiedConfig.from_dict({**data["cfg"], "tokenizer_name": str(tokenizer)})
        graph = Graph(
            input_string=data["input_string"], input_tokens=data["input_tokens"],
            active_features=data["active_features"], adjacency_matrix=data["adjacency_matrix"], cfg=cfg,
            selected_features=data["selected_features"], activation_values=data["activation_values"],
            logit_targets=[LogitTarget(token_str=s, vocab_idx=i) for s, i in data["logit_targets"]],
            logit_probabilities=data["logit_probabilities"], scan=data["scan"], vocab_size=data["vocab_size"])
        node_mask, edge_mask, cumulative = prune_graph(graph, NODE_THRESHOLD, EDGE_THRESHOLD)
        replacement, completeness = compute_graph_scores(graph)
        out = Path(tmp) / "out"
        create_graph_files(graph, SLUG, str(out), scan=SCAN, node_threshold=NODE_THRESHOLD, edge_threshold=EDGE_THRESHOLD)
        fixtures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / f"{SLUG}.json", fixtures / f"{SLUG}.json")
    pairs = edge_mask.nonzero().tolist()  # [target, source], in circuit-tracer's (row-major) order
    prune = {
        "circuit_tracer": "0.5.0", "node_threshold": NODE_THRESHOLD, "edge_threshold": EDGE_THRESHOLD,
        "n_nodes": len(node_mask), "n_edges": int((data["adjacency_matrix"] != 0).sum()),
        "kept_nodes": node_mask.nonzero()[:, 0].tolist(), "kept_edges": pairs,
        "cumulative": cumulative.tolist(), "replacement_score": replacement, "completeness_score": completeness,
    }
    (fixtures / f"{SLUG}_prune.json").write_text(json.dumps(prune) + "\n")
    print(f"{fixtures}: {SLUG}.json, {SLUG}_prune.json ({int(node_mask.sum())} nodes, {len(pairs)} edges kept; "
          f"replacement {replacement:.4f}, completeness {completeness:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("graph", "tracer"), help="graph: stage 1 (ours); tracer: stage 2 (circuit-tracer)")
    parser.add_argument("--graph", type=Path, default=GRAPH_PT, help="the stage-1 file")
    parser.add_argument("--out", type=Path, default=FIXTURES, help="stage 2's output folder")
    args = parser.parse_args()
    if args.stage == "graph":
        stage_graph(args.graph)
    else:
        stage_tracer(args.graph, args.out)


if __name__ == "__main__":
    main()
