"""The package's structure holds: data flows one way (model -> engine -> results -> views).

Read from the source with `ast` (every import, at module level or inside a function), so the check sees what
`python -m` would load, and at run time (a widget handler's forward passes are traced to the module that made them).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "interpwidgets"

# Who may import whom: a package may import itself and the packages listed for it, nothing else.
ALLOWED = {
    "config": set(),
    "data": set(),
    "models": {"config", "data"},
    "tasks": {"config", "data", "models"},
    "interventions": {"config", "models"},
    "patching": {"config", "models", "tasks", "interventions"},
    "lens": {"config", "models", "tasks", "interventions", "patching"},
    "sae": {"config", "data", "models", "tasks", "interventions", "patching"},
    "circuits": {"config", "data", "models", "tasks", "interventions", "patching", "sae"},
    "widgets": {"config", "data", "models", "tasks", "interventions", "patching", "lens", "sae", "circuits"},
    # exercise checks: beside the widgets at the top, computing their answers from the engine, never from a view
    "teach": {"config", "data", "models", "tasks", "interventions", "patching", "lens", "sae", "circuits"},
}
ENGINE = set(ALLOWED) - {"widgets"}


def _package_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """The interpwidgets subpackages `path` imports (absolute or relative, anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    here = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            if names[0] == "interpwidgets":
                names = [f"interpwidgets.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "interpwidgets" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_package_imports_only_the_layers_below_it():
    """No package imports one above it (so there is no package cycle), and no engine package imports widgets."""
    wrong = []
    for path in _modules():
        package = _package_of(path)
        if package not in ALLOWED:
            wrong.append(f"{path.relative_to(PACKAGE)}: package {package!r} has no place in the layering")
            continue
        for target in _imports(path) - {package} - ALLOWED[package]:
            wrong.append(f"{path.relative_to(PACKAGE)} imports interpwidgets.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_layering_has_no_cycle():
    """The allowed-imports table itself is acyclic, so following it can never close a loop."""
    seen: dict[str, int] = {}

    def depth(package: str, path: tuple[str, ...] = ()) -> int:
        assert package not in path, f"cycle: {' -> '.join((*path, package))}"
        if package not in seen:
            seen[package] = 1 + max((depth(p, (*path, package)) for p in ALLOWED[package]), default=0)
        return seen[package]

    for package in ALLOWED:
        depth(package)


def test_module_imports_have_no_cycle():
    """Inside the package, no chain of module imports leads back to where it started, counting imports inside
    functions too (an import deferred into a function hides a cycle; it does not remove it)."""
    graph: dict[str, set[str]] = {}
    names = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in _modules()}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("interpwidgets"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in names else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("interpwidgets")}
        graph[name] = {t for t in targets if t in names and t != name}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


_FORWARD_CALLS = ("run_with_cache", "run_with_hooks", "generate", "hooked", "block_inputs_hooked")


def test_no_widget_module_calls_the_model_itself():
    """Widget modules never call `model(...)`, `run_with_cache`, `run_with_hooks`, `generate` of a model or attach
    hooks: every forward pass of a view goes through an engine function that a notebook can call too."""
    wrong = []
    for path in sorted((PACKAGE / "widgets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = ast.unparse(func)
            if isinstance(func, ast.Attribute) and func.attr in _FORWARD_CALLS and "model" in ast.unparse(func.value):
                wrong.append(f"{path.name}:{node.lineno}: {called}(...)")
            elif isinstance(func, ast.Name) and func.id in ("hooked", "block_inputs_hooked"):
                wrong.append(f"{path.name}:{node.lineno}: {called}(...)")
            elif called in ("model", "self.model", "self._model") or called.endswith(".model"):
                wrong.append(f"{path.name}:{node.lineno}: {called}(...)")
    assert not wrong, "\n".join(wrong)


def _caller_outside_torch() -> str:
    """The module of the first frame above this hook that is neither torch, transformer_lens nor transformers."""
    for frame in inspect.stack()[2:]:
        module = frame.frame.f_globals.get("__name__", "")
        if not module.startswith(("torch", "transformer_lens", "transformers", __name__)):
            return module
    return ""


def test_widget_handlers_run_the_model_only_through_engine_functions(teaching_model):
    """At run time, every forward pass that building and clicking the views makes is called from an engine module,
    never from `interpwidgets.widgets` (on the code before the redesign this names widgets.attention_data)."""
    import interpwidgets as iw
    from interpwidgets.widgets.testing import ask

    callers: list[str] = []
    # on the first block, not the bridge: run_with_cache reaches the blocks without calling the bridge's forward
    handle = teaching_model.blocks[0].register_forward_pre_hook(lambda module, args: callers.append(_caller_outside_torch()))
    prompt = "When Mary and John went to the store, John gave a drink to"
    try:
        task = iw.tasks.ioi(teaching_model, n=2, seed=0)
        result = iw.patching.activation_patch(teaching_model, task, site="resid_pre")
        heatmap = iw.widgets.PatchHeatmap(result)
        layers, positions = result.values.shape[:2]
        ok, reply = ask(heatmap, "intervene", cells=[[layers - 1, positions - 1]])
        assert ok, reply
        iw.widgets.AttentionPatterns(teaching_model, prompt)
        saes = iw.sae.pretrained(teaching_model)
        features = iw.widgets.TokenFeatures(teaching_model, saes, prompt, hook="blocks.2.hook_resid_post", feature=0)
        ok, reply = ask(features, "intervene", position=3)
        assert ok, reply
        steering = iw.widgets.Steering(teaching_model, saes, prompt, features=[("blocks.2.hook_resid_post", 0)],
                                       max_new_tokens=2)
        ok, reply = ask(steering, "generate")
        assert ok, reply
    finally:
        handle.remove()
    assert callers, "no forward pass was seen: the trace is broken"
    from_widgets = sorted({c for c in callers if c.startswith("interpwidgets.widgets")})
    assert not from_widgets, f"forward passes made directly by {from_widgets}"

