"""The widget protocol under fuzzing: thousands of random and malformed messages (wrong types, huge lists, negative,
NaN and infinite numbers, unknown methods, missing ids, missing and extra parameters, 10 MB strings, nested garbage)
and garbage trait updates sent to every widget's handlers, as a broken or hostile front end could send them.

For each widget built on the small random model, with fixed seeds (hypothesis, derandomized) and bounded counts:
`handle_message` never raises; every malformed message gets `ok: False` with a short message and no traceback text,
addressed to its id when it had a readable one; every garbage trait update is refused with a message and leaves the
widget's state as it was; after each batch a valid request gets exactly the answer it got before fuzzing; no hook is
left on the model, which still gives the same logits; the peak resident memory of the run stays within a few hundred
MiB, sending the same messages again adds almost nothing, and the widget's history stays capped.

Which messages are malformed is decided here, from the handlers' documented parameters (SCHEMAS), never by asking
the widget: the generators only make messages that are malformed by construction (an invalid envelope, an unknown
or missing parameter, a value outside what the parameter takes), so each one must be refused.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any
import re

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import interpwidgets as iw
import interpwidgets.widgets as widgets_module
from interpwidgets.circuits.graph import Circuit, Edge, Node
from interpwidgets.interventions.hooks import count_hooks
from interpwidgets.sae import SAEConfig, SAESet, build_sae
from interpwidgets.widgets import (
    AttentionPatterns,
    AttributionGraphView,
    CircuitGraph,
    DirectLogitAttribution,
    FeatureDashboard,
    InterpWidget,
    LogitLens,
    PatchHeatmap,
    Steering,
    TokenFeatures,
)
from interpwidgets.widgets.feature_params import get_hook
from interpwidgets.widgets.history import HISTORY_LIMIT
from interpwidgets.widgets.messages import RequestError

PROMPT = "When Mary and John went to the store, John gave a drink to"
RESID1, RESID2 = "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"
MAX_ERROR = 600  # base.MAX_ERROR_LENGTH, the documented clip of an error message
TEN_MB = "\u00e9" * 5_000_000  # 10 MB of UTF-8, made once: the fuzz run must not pay for it per message
BIG_WORDS = " Mary" * 2_000_000  # 10 MB of text that is millions of tokens
HUGE_LIST = list(range(1_000_000))
DEEP: Any = 0
for _ in range(200):
    DEEP = [DEEP]
REPLIES_PER_EXAMPLE = 4  # malformed messages per hypothesis example, at most (then a trait update or none, then a valid request)
EXAMPLES = 60  # per pass; each widget gets two passes of the same examples
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
                phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure shows its first example, fast
                suppress_health_check=list(HealthCheck))
TRACEBACK_LINE = re.compile(r'File "[^"]*", line \d+')
RESULTS: dict[str, dict[str, int]] = {}


# ---- the widgets, each built once on tiny inputs ---------------------------------------------------------------
def _saes(hooks=(RESID1, RESID2), d_sae: int = 32) -> SAESet:
    return SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=d_sae, architecture="topk", k=4, hook_name=hook), seed=i)
                      for i, hook in enumerate(hooks)])


def _circuit() -> Circuit:
    resid = lambda layer: f"blocks.{layer}.hook_resid_post"  # noqa: E731
    nodes = [
        Node("resid_post1/5@3", 1, "resid_post", 5, 3, "resid_post1 #5 @3", 0.8, activation=1.5, dictionary=resid(1)),
        Node("resid_post2/7@4", 2, "resid_post", 7, 4, "resid_post2 #7 @4", -0.4, dictionary=resid(2)),
        Node("metric", 4, "metric", label="ioi", effect=-1.0),
    ]
    edges = [Edge("resid_post1/5@3", "resid_post2/7@4", 0.3), Edge("resid_post2/7@4", "metric", -0.6)]
    return Circuit(nodes, edges, {"task": "ioi", "n_layers": 4}, method="atp", kinds=("resid_post",))


class Built:
    """A widget, the valid requests whose answers must not change, and the facts the generators need."""

    def __init__(self, widget: InterpWidget, valid: list[tuple[str, dict]], **facts: Any) -> None:
        self.widget, self.valid, self.facts = widget, valid, facts


def build(name: str, model) -> Built:
    """Each exported InterpWidget on the random model; `valid` requests read only what the fuzzing must not change."""
    saes = _saes()
    task = iw.tasks.ioi(model, n=2, seed=0)
    if name == "AttentionPatterns":
        widget = AttentionPatterns(model, PROMPT, layer=1, head=2)
        return Built(widget, [("pattern", {}), ("thumbnails", {})])
    if name == "PatchHeatmap":
        result = iw.patching.activation_patch(model, task, site="z", normalize=False, progress=False)
        return Built(PatchHeatmap(result), [("intervene", {"cells": [[1, 2]]}), ("intervene", {"cells": [[0, 1], [3, 3]]})],
                     shape=tuple(result.values.shape))
    if name == "TokenFeatures":
        widget = TokenFeatures(model, saes, PROMPT, hook=RESID1, feature=3)
        return Built(widget, [("intervene", {"position": 4}), ("token", {"position": 2}), ("activations", {})],
                     n_tokens=len(widget.tokens))
    if name == "FeatureDashboard":
        corpus = torch.randint(1, 700, (4, 12), generator=torch.Generator().manual_seed(0))
        return Built(FeatureDashboard(model, saes, feature=3, hook=RESID1, corpus=corpus), [("feature", {})])
    if name == "Steering":
        widget = Steering(model, saes, PROMPT, features=[(RESID1, 3)], max_new_tokens=3)
        widget.scales = [widget.rows[0]["limit"] / 2]
        return Built(widget, [("generate", {})], saes=saes)
    if name == "CircuitGraph":
        circuit = _circuit()
        widget = CircuitGraph(circuit, model=model, saes=saes, task=task)
        return Built(widget, [("ablate", {"node": "resid_post2/7@4"})], node_ids=[n.id for n in circuit.nodes])
    if name == "LogitLens":
        return Built(LogitLens(model, PROMPT, k=3), [("follow", {"token": " Mary"}), ("follow", {"token": 7})],
                     d_vocab=model.cfg.d_vocab)
    if name == "DirectLogitAttribution":
        widget = DirectLogitAttribution(model, task)
        return Built(widget, [("ablate", {"component": "L1H0"}), ("ablate", {"component": "mlp2"})],
                     components=sorted(widget._clickable))
    if name == "AttributionGraphView":
        transcoders = SAESet.of([build_sae(SAEConfig(d_in=128, d_sae=32, architecture="topk", k=4,
                                                     hook_name=f"blocks.{layer}.ln2.hook_normalized",
                                                     hook_name_out=f"blocks.{layer}.hook_mlp_out"), seed=layer)
                                 for layer in range(model.cfg.n_layers)])
        graph = iw.circuits.attribution_graph(model, transcoders, PROMPT, max_feature_nodes=40, max_n_logits=2,
                                              progress=False)
        widget = AttributionGraphView(graph)
        sent = sorted(widget._sent)
        feature = next(graph.nodes[i].id for i in sent if int(graph.node_type[i]) == 0)
        return Built(widget, [("faithfulness", {"nodes": sent[:5], "ablation": "zero"}),
                              ("intervene", {"node": feature, "mode": "steer", "factor": 2.0, "freeze_attention": True,
                                             "constrained": False})],
                     sent=sent, node_ids=[n.id for n in graph.nodes], feature=feature)
    raise AssertionError(f"no fuzz builder for {name}: add one (and its SCHEMAS and TRAITS entries)")


# Each widget's requests -> their parameters and what each takes, read from the handlers' docstrings
SCHEMAS: dict[str, dict[str, dict[str, str]]] = {
    "AttentionPatterns": {"thumbnails": {}, "pattern": {}, "prompt": {"text": "prompt"}},
    "PatchHeatmap": {"intervene": {"cells": "cells"}},
    "TokenFeatures": {"features": {}, "activations": {}, "token": {"position": "position"},
                      "intervene": {"position": "position"}, "prompt": {"text": "prompt"}},
    "FeatureDashboard": {"feature": {}},
    "Steering": {"generate": {}, "add": {"hook": "hook", "feature": "feature"}, "remove": {"index": "index"},
                 "prompt": {"text": "prompt"}},
    "CircuitGraph": {"ablate": {"node": "node"}, "open": {"node": "node"}},
    "LogitLens": {"follow": {"token": "token"}, "prompt": {"text": "prompt"}},
    "DirectLogitAttribution": {"ablate": {"component": "component"}},
    "AttributionGraphView": {"faithfulness": {"nodes": "node_indices", "ablation": "ablation"},
                             "intervene": {"node": "graph_node", "mode": "mode", "factor": "factor",
                                           "freeze_attention": "flag", "constrained": "flag"},
                             "open": {"node": "graph_node"}, "group": {"name": "name", "nodes": "node_indices"},
                             "ungroup": {"name": "supernode"}},
}


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _traitlets_int(value: Any, low: float, high: float) -> bool:
    """What an Int trait with a range check takes: ints (bools included) and integral floats, as traitlets' Int does."""
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return integral and low <= value <= high


def _traitlets_float(value: Any, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and low <= value <= high


def _one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value in choices


def trait_rules(name: str, built: Built) -> dict[str, Callable[[Any], bool]]:
    """Each trait the front end may write -> the values it takes (written here from the widget's docs)."""
    w = built.widget
    if name == "AttentionPatterns":
        return {"layer": lambda v: _traitlets_int(v, 0, 3), "head": lambda v: _traitlets_int(v, 0, 3),
                "view": _one_of("matrix", "text"), "weighting": _one_of(*w.weightings)}
    if name == "PatchHeatmap":
        return {"action": _one_of("zero", "mean", "patch")}
    if name == "TokenFeatures":
        return {"hook": _one_of(*w.hooks), "feature": lambda v: _traitlets_int(v, 0, 31),
                "action": _one_of("ablate", "steer"), "alpha": lambda v: _traitlets_float(v, -1e4, 1e4)}
    if name == "FeatureDashboard":
        return {"hook": _one_of(*w.hooks), "feature": lambda v: _traitlets_int(v, 0, 31),
                "follow_selection": lambda v: isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))}
    if name == "Steering":
        limit = w.rows[0]["limit"]
        return {"scales": lambda v: isinstance(v, (list, tuple)) and len(v) == 1 and _traitlets_float(v[0], -limit, limit),
                "max_new_tokens": lambda v: _traitlets_int(v, 1, 64), "sampling": _one_of("greedy", "sample"),
                "temperature": lambda v: _traitlets_float(v, 0.05, 5.0), "seed": lambda v: _traitlets_int(v, 0, 2**31 - 1)}
    if name == "CircuitGraph":
        return {"action": _one_of(*w.actions), "ablation": _one_of(*w.ablations)}
    if name == "DirectLogitAttribution":
        return {"ablation": _one_of(*w.ablations)}
    if name == "LogitLens":
        return {}
    if name == "AttributionGraphView":
        return {"node_threshold": lambda v: _traitlets_float(v, 0.0, w.max_node_threshold),
                "edge_threshold": lambda v: _traitlets_float(v, 0.0, 1.0)}
    raise AssertionError(f"no trait rules for {name}")


# ---- the generators -------------------------------------------------------------------------------------------
numbers = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, -1, -0.0, 2**63, 10**400, -(10**400)]))
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12),
                   st.sampled_from([TEN_MB, "", " ", "\x00", "<script>alert(1)</script>", "{0}", "%s", "\u202e"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                       max_leaves=12) | st.sampled_from([HUGE_LIST, DEEP, [[0, 0]] * 5000, {"$buffer": 0}])


def bad_value(kind: str, facts: dict[str, Any]) -> st.SearchStrategy:
    """A value parameter `kind` does not take (kinds as in SCHEMAS)."""
    if kind == "cells":
        shape = facts["shape"]

        def valid(cells: Any) -> bool:
            return (isinstance(cells, list) and 0 < len(cells) <= 16
                    and all(isinstance(c, list) and len(c) == len(shape) and all(map(_int_in, c, [0] * len(shape), [s - 1 for s in shape]))
                            for c in cells)
                    and len({tuple(c) for c in cells}) == len(cells))
        near = st.lists(st.lists(st.integers(-3, 6), min_size=1, max_size=3), min_size=0, max_size=18)
        return st.one_of(garbage, near, st.just([[0, 0], [0, 0]]), st.just([[math.nan, 0]]), st.just([[True, 0]])).filter(
            lambda v: not valid(v))
    if kind in ("position", "index", "feature"):
        high = {"position": facts.get("n_tokens", 1) - 1, "index": 0, "feature": 31}[kind]
        return st.one_of(garbage, st.integers(-5, high + 5)).filter(lambda v: not _int_in(v, 0, high))
    if kind == "node":
        ids = facts["node_ids"]
        return st.one_of(garbage, st.sampled_from(ids).map(lambda i: i + " "), st.sampled_from(ids).map(str.upper)).filter(
            lambda v: not (isinstance(v, str) and v in ids))
    if kind == "component":
        components = facts["components"]
        return st.one_of(garbage, st.sampled_from(["L9H9", "L0H4", "mlp9", "embed", "l1h0", "L1H0 "])).filter(
            lambda v: not (isinstance(v, str) and v in components))
    if kind == "hook":
        return st.one_of(garbage, st.sampled_from(["blocks.1.hook_resid_pre", "blocks.9.hook_resid_post", RESID1.upper()]))
    if kind == "token":  # not a one-token string nor an id in the vocabulary: the multi-word and unknown-word texts
        d_vocab = facts["d_vocab"]
        words = st.lists(st.sampled_from([" Mary", " John", " store", "xyzzy", "qq"]), min_size=2, max_size=6).map("".join)
        return st.one_of(st.none(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=3), st.just({}),
                         st.integers(max_value=-1), st.integers(min_value=d_vocab), st.just(""), st.just("xyzzy"), words,
                         st.just(2**70), st.just(math.nan))
    if kind == "node_indices":
        sent = facts["sent"]
        return st.one_of(garbage, st.lists(st.integers(-3, max(sent) + 3), min_size=0, max_size=6),
                         st.just([sent[0], sent[0]]), st.just([True]), st.just([float(sent[0])])).filter(
            lambda v: not (isinstance(v, list) and 0 < len(v) <= len(sent) and len(set(map(repr, v))) == len(v)
                           and all(type(i) is int and i in sent for i in v)))
    if kind == "graph_node":
        ids = facts["node_ids"]
        return st.one_of(garbage, st.sampled_from(ids).map(lambda i: i + " ")).filter(
            lambda v: not (isinstance(v, str) and v in ids))
    if kind in ("ablation", "mode"):
        choices = ("zero",) if kind == "ablation" else ("ablate", "steer")
        return st.one_of(garbage, st.sampled_from(["mean", "Zero", "resample", "", "steer "])).filter(
            lambda v: not (isinstance(v, str) and v in choices))
    if kind == "factor":
        return st.one_of(garbage, st.sampled_from([math.nan, math.inf, 20.5, -1e9, True])).filter(
            lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and abs(v) <= 20))
    if kind == "flag":
        return garbage.filter(lambda v: not isinstance(v, bool))
    if kind in ("name", "supernode"):  # no supernode exists, so every name is unknown to ungroup
        return st.one_of(st.none(), numbers, st.just(""), st.just("   "), st.just(TEN_MB), st.lists(st.text(), max_size=2)) \
            if kind == "name" else st.one_of(garbage, st.text(max_size=12))
    if kind == "prompt":  # empty, too long for the box, or not text
        return st.one_of(st.just(""), st.just("   \n\t"), st.just(TEN_MB), st.just(BIG_WORDS), st.just(" Mary" * 300),
                         st.none(), st.integers(), st.lists(st.integers(0, 9), max_size=4), st.floats())
    raise AssertionError(kind)


def messages_for(name: str, built: Built) -> st.SearchStrategy:
    """Messages that are malformed by construction, for widget `name`."""
    schema, facts = SCHEMAS[name], built.facts
    methods = sorted(schema)
    good_id = st.text(min_size=1, max_size=64)
    bad_id = st.one_of(st.none(), st.just(""), st.text(min_size=65, max_size=80), st.just(TEN_MB), numbers, st.lists(st.text(), max_size=2))
    bad_kind = st.one_of(st.none(), st.text(max_size=12), st.just("iw:response"), st.just("anywidget-command"), numbers)
    bad_method = st.one_of(st.text(max_size=12).filter(lambda m: m not in schema), st.none(), numbers, st.just(TEN_MB),
                           st.sampled_from(["__init__", "_intervene", "handle_message", "send", "Pattern", "prompt "]))
    bad_params = st.one_of(st.none(), numbers, st.text(max_size=8), st.lists(garbage, max_size=3), st.just(TEN_MB))

    @st.composite
    def envelope(draw) -> dict:
        """A valid envelope of a known method whose params break that method's schema."""
        method = draw(st.sampled_from(methods))
        wanted = schema[method]
        params: dict[str, Any] = {}
        how = draw(st.sampled_from(["extra", "missing", "bad"] if wanted else ["extra"]))
        params: dict[str, Any] = {key: draw(_valid_value(kind, built)) for key, kind in wanted.items()}
        if how == "missing":  # drop at least one parameter
            for key in draw(st.sets(st.sampled_from(sorted(wanted)), min_size=1)):
                del params[key]
        elif how == "bad":  # at least one value the parameter does not take
            for key in draw(st.sets(st.sampled_from(sorted(wanted)), min_size=1)):
                params[key] = draw(bad_value(wanted[key], facts))
        else:  # at least one parameter the method does not take
            params.update(draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in wanted), garbage,
                                               min_size=1, max_size=3)))
        return {"kind": "iw:request", "id": draw(good_id), "method": method, "params": params}

    @st.composite
    def broken(draw) -> dict:
        """An envelope with at least one broken field (and maybe extra fields, which are ignored)."""
        message = draw(envelope()) if draw(st.booleans()) else {
            "kind": "iw:request", "id": draw(good_id), "method": draw(st.sampled_from(methods)), "params": {}}
        fields = draw(st.sets(st.sampled_from(["id", "kind", "method", "params"]), min_size=1))
        for field in fields:
            if draw(st.booleans()):
                del message[field]
                if field == "params":  # a missing params is {}: break something else as well
                    message["kind"] = draw(bad_kind)
            else:
                message[field] = draw({"id": bad_id, "kind": bad_kind, "method": bad_method, "params": bad_params}[field])
        message.update(draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in message), garbage, max_size=2)))
        if "params" in message and isinstance(message["params"], dict) and message.get("kind") == "iw:request" \
                and isinstance(message.get("id"), str) and 0 < len(message["id"]) <= 64 and message.get("method") in schema:
            message["kind"] = "iw:reply"  # every field came out valid: break the kind
        return message

    not_a_request = st.one_of(st.none(), numbers, st.text(max_size=20), st.just(TEN_MB), st.lists(garbage, max_size=3),
                              st.just(HUGE_LIST), st.just(DEEP), st.binary(max_size=16))
    return st.one_of(not_a_request, broken(), envelope(), envelope())


def _valid_value(kind: str, built: Built) -> st.SearchStrategy:
    facts = built.facts
    if kind == "cells":
        shape = facts["shape"]
        return st.lists(st.tuples(*(st.integers(0, s - 1) for s in shape)).map(list), min_size=1, max_size=3,
                        unique_by=tuple)
    if kind == "position":
        return st.integers(0, facts["n_tokens"] - 1)
    if kind == "hook":
        return st.sampled_from(sorted(built.facts["saes"]))
    if kind == "feature":
        return st.integers(0, 31)
    if kind == "index":
        return st.just(0)
    if kind == "node":
        return st.sampled_from(facts["node_ids"])
    if kind == "component":
        return st.sampled_from(facts["components"])
    if kind == "token":
        return st.sampled_from([" Mary", 7])
    if kind == "prompt":
        return st.just("When John went")
    if kind == "node_indices":
        return st.lists(st.sampled_from(facts["sent"]), min_size=1, max_size=4, unique=True)
    if kind == "graph_node":
        return st.just(facts["feature"])
    if kind == "ablation":
        return st.just("zero")
    if kind == "mode":
        return st.just("steer")
    if kind == "factor":
        return st.floats(-4, 4)
    if kind == "flag":
        return st.booleans()
    if kind in ("name", "supernode"):
        return st.just("a group")
    raise AssertionError(kind)


def trait_updates(name: str, built: Built) -> st.SearchStrategy:
    """`set_state` payloads that hold at least one key the widget must refuse (not writable, or a bad value)."""
    rules = trait_rules(name, built)
    widget = built.widget
    others = sorted(set(widget.keys) - set(rules))
    refused_key = st.one_of(st.sampled_from(others), st.text(max_size=10).filter(lambda k: k not in rules))
    bad_entries = [refused_key.flatmap(lambda key: garbage.map(lambda value, key=key: (key, value)))]
    for trait, takes in rules.items():
        bad_entries.append(st.one_of(garbage, numbers, st.lists(numbers, max_size=3), st.just(TEN_MB)).filter(
            lambda v, takes=takes: not takes(v)).map(lambda v, trait=trait: (trait, v)))
    bad = st.one_of(*bad_entries)
    anything = st.one_of(*(st.tuples(st.just(trait), garbage) for trait in rules)) if rules else bad
    return st.tuples(bad, st.lists(anything, max_size=2)).map(lambda pair: dict([*pair[1], pair[0]]))


# ---- what a reply must be ---------------------------------------------------------------------------------------
def refused(reply: dict, message: Any) -> str:
    """The error of `reply`, checked: ok False, a short message with no traceback, addressed to the message's id."""
    assert isinstance(reply, dict) and reply.get("kind") == "iw:response", reply
    assert reply["ok"] is False, f"a malformed message was accepted: {_short(message)} -> {_short(reply)}"
    error = reply["error"]
    assert isinstance(error, str) and error and len(error) <= MAX_ERROR, _short(error)
    assert "Traceback (most recent call last)" not in error and not TRACEBACK_LINE.search(error), error
    readable = isinstance(message, dict) and isinstance(message.get("id"), str) and 0 < len(message["id"]) <= 64
    assert reply["id"] == (message["id"] if readable else None), (reply["id"], _short(message))
    return error


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


VOLATILE = ("ms",)  # reply fields that measure the request itself (the kernel's time), not its answer


def answer(widget: InterpWidget, method: str, params: dict, request_id: str = "valid") -> tuple[dict, list[bytes]]:
    reply, buffers = widget.handle_message({"kind": "iw:request", "id": request_id, "method": method, "params": params})
    assert reply["ok"], reply
    if isinstance(reply.get("result"), dict):
        reply = {**reply, "result": {k: v for k, v in reply["result"].items() if k not in VOLATILE}}
    return {k: v for k, v in reply.items() if k != "id"}, buffers


def _status(field: str) -> float:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("peak resident memory cannot be reset on this system")


# a view that takes no request and no trait update from the browser; its own test checks that it refuses both
NO_FRONT_END_INPUT = {"TrainingMonitor"}  # tests/unit/test_widgets_training_monitor.py
EXPORTED = sorted(name for name in widgets_module.__all__
                  if isinstance(getattr(widgets_module, name), type) and issubclass(getattr(widgets_module, name), InterpWidget)
                  and getattr(widgets_module, name) is not InterpWidget and name not in NO_FRONT_END_INPUT)


def test_every_exported_widget_is_fuzzed():
    """A new widget (or a new request of one) needs its entry here before the fuzzing below covers it."""
    assert EXPORTED == sorted(SCHEMAS)


@pytest.fixture(scope="module")
def built(random_model):
    made: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in made:
            made[name] = build(name, random_model)
            assert sorted(made[name].widget._handlers) == sorted(SCHEMAS[name]), f"{name}'s requests changed: update SCHEMAS"
        return made[name]

    return get


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_malformed_messages_and_trait_updates_are_refused_and_the_widget_keeps_working(random_model, built, name, one_thread):
    b = built(name)
    widget = b.widget
    tokens = random_model.to_tokens(PROMPT)
    with torch.no_grad():
        logits = random_model(tokens)
    expected = [answer(widget, method, params) for method, params in b.valid]
    rules = trait_rules(name, b)
    state = {trait: widget.trait_values()[trait] for trait in rules}
    errors: list[str] = []  # what the front end would show: the error messages the widget sent
    widget.send = lambda content, buffers=None: errors.append(content["error"]) if not content.get("ok", True) else None
    widget.send_state = lambda key=None: None
    counts = {"messages": 0, "trait_updates": 0, "valid": 0}

    @FUZZ
    @given(batch=st.lists(messages_for(name, b).map(lambda m: ("message", m)), min_size=1, max_size=REPLIES_PER_EXAMPLE),
           updates=st.lists(trait_updates(name, b).map(lambda u: ("traits", u)), max_size=1),
           check=st.integers(0, len(b.valid) - 1))
    def fuzz(batch, updates, check):
        for what, payload in batch + updates:
            if what == "message":
                reply, buffers = widget.handle_message(payload)  # must not raise
                refused(reply, payload)
                assert buffers == []
                counts["messages"] += 1
            else:
                before = len(errors)
                widget.set_state(payload)  # must not raise
                assert len(errors) == before + 1, f"update {_short(payload)} was not refused"
                assert "Traceback" not in errors[-1] and len(errors[-1]) <= MAX_ERROR
                assert {trait: widget.trait_values()[trait] for trait in rules} == state, _short(payload)
                counts["trait_updates"] += 1
            assert count_hooks(random_model) == 0
        method, params = b.valid[check]
        assert answer(widget, method, params, request_id=f"valid-{counts['valid']}") == expected[check]
        counts["valid"] += 1

    _reset_peak()
    gc.collect()
    start = _status("VmRSS:")
    fuzz()  # the first pass: what the widget, torch and Python allocate once to answer these messages
    gc.collect()
    after_first = _status("VmRSS:")
    fuzz()  # the same messages again (derandomized): whatever a message leaves behind shows as growth here
    gc.collect()
    peak, growth = _status("VmHWM:") - start, _status("VmRSS:") - after_first
    RESULTS[name] = {**counts, "peak_mb": round(peak, 1), "first_pass_mb": round(after_first - start, 1),
                     "second_pass_growth_mb": round(growth, 1)}
    print(f"\n{name}: {RESULTS[name]}")
    assert counts["messages"] + counts["trait_updates"] >= 250
    # the first pass holds hypothesis's 10 MB strings and their JSON copies at once (41-129 MiB seen); boundedness is
    # what the second pass shows: the same messages again add (almost) nothing
    assert peak < 256, f"peak resident memory {peak:.0f} MiB above the start of the fuzz run"
    assert growth < 8, f"resident memory grew by {growth:.0f} MiB when the same messages were sent again"
    assert len(widget.history) <= HISTORY_LIMIT
    assert count_hooks(random_model) == 0
    with torch.no_grad():
        assert torch.equal(random_model(tokens), logits)
    for (method, params), before in zip(b.valid, expected):
        assert answer(widget, method, params) == before


def test_an_integer_too_large_for_a_float_trait_is_refused_not_raised(random_model, built):
    """JSON may carry an integer of 400 digits; traitlets' Float raises OverflowError (no TraitError) on it."""
    widget = built("TokenFeatures").widget
    sent: list[dict] = []
    widget.send = lambda content, buffers=None: sent.append(content)
    widget.send_state = lambda key=None: None
    alpha = widget.alpha
    widget.set_state({"alpha": 10**400})
    assert widget.alpha == alpha
    assert len(sent) == 1 and sent[0]["ok"] is False and "OverflowError" in sent[0]["error"]


def test_following_a_huge_string_is_refused_before_it_is_tokenized(random_model, built, monkeypatch):
    """A 2 MB 'token' is refused from its length alone: the tokenizer never sees it, memory stays flat."""
    lens = built("LogitLens").widget
    tokenizer = lens.result.model.tokenizer
    encoded = []
    monkeypatch.setattr(tokenizer, "encode", lambda *args, **kwargs: encoded.append(args) or [0])
    _reset_peak()
    start = _status("VmRSS:")
    ok, error = _ask_follow(lens, " Mary" * 400_000)
    peak = _status("VmHWM:") - start
    assert not ok and len(error) <= MAX_ERROR and "is not one token" in error
    assert encoded == [] and peak < 32, f"tokenized {len(encoded)} times, {peak:.0f} MiB to refuse a 2 MB token"


def test_a_huge_node_id_or_hook_is_quoted_short_in_the_error(random_model, built):
    """Before: `{value!r}` put the whole 1 MB value into the message (clipped only when sent). Now it is quoted short."""
    huge = "n" * 1_000_000
    with pytest.raises(RequestError) as node_error:
        built("CircuitGraph").widget._node({"node": huge})
    with pytest.raises(RequestError) as hook_error:
        get_hook({"hook": huge}, [RESID1])
    for error, start in ((node_error, "node must be the id of a node of this circuit, got 'nnn"),
                         (hook_error, f"hook must be one of {[RESID1]}, got 'nnn")):
        message = str(error.value)
        assert message.startswith(start) and len(message) < 250, message[:300]


def _ask_follow(widget: InterpWidget, token: str) -> tuple[bool, str]:
    reply, _ = widget.handle_message({"kind": "iw:request", "id": "big", "method": "follow", "params": {"token": token}})
    return reply["ok"], reply.get("error", "")


def test_steering_keeps_a_bounded_cache_of_baseline_generations(random_model, built, one_thread):
    """Before: one baseline per settings tuple ever asked for, with no cap. Now the 16 most recently used stay."""
    steering = build("Steering", random_model).widget
    steering.sampling = "sample"
    for seed in range(40):
        steering.set_state({"seed": seed})
        assert _ask_generate(steering)
    assert len(steering._baseline) <= 16
    assert [key[3] for key in steering._baseline][-3:] == [37, 38, 39]  # the newest are the ones kept


def _ask_generate(widget: InterpWidget) -> bool:
    return widget.handle_message({"kind": "iw:request", "id": "g", "method": "generate", "params": {}})[0]["ok"]
