"""The import rules of DESIGN.md and docs/architecture.md, enforced on the source.

Every module of ``src/hwtune`` is parsed with :mod:`ast` (nothing is imported, so neither torch nor
the package loads). Every import statement counts: at module level and inside functions (a lazy import
is still a dependency), and ``importlib.import_module("<constant>")`` calls too.

Decisions:

- ``if TYPE_CHECKING:`` imports obey the layer table and the torch / optuna rules like any other (an
  annotation naming an upper layer is still a dependency on it). They are left out of the cycle check
  only, and they satisfy a "lazy only" rule, since they never run.
- "Lazy only" (:data:`LAZY_ONLY`): the import may sit inside a function or under ``TYPE_CHECKING``,
  never run when the module itself is imported.
- A cycle counts module-level and function-level imports, and the implicit import of a package's
  ``__init__`` when one of its modules is imported from outside it.
- The checker is :func:`check`: it takes a module -> imports graph, so the tests below also show that
  it fails on a deliberately bad graph.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "__root__"
"""Layer name of the top-level ``hwtune/__init__.py``."""

# -- the rules ---------------------------------------------------------------------------------------
GROUND = frozenset({"vocabulary", "exceptions"})
"""Imported by every layer; they import nothing of hwtune."""
_STUDY_AND_BELOW = frozenset({"study", "search", "costmodel", "hardware", "train", "compress", "space", "tabular"}) | GROUND
LAYERS: dict[str, frozenset[str]] = {
    "exceptions": frozenset(),
    "vocabulary": frozenset(),
    "space": GROUND,
    "tabular": frozenset({"space"}) | GROUND,
    "costmodel": frozenset({"space", "tabular"}) | GROUND,
    # the sampler screens its candidates with the study's cost model (DESIGN.md: "the ONE cost model")
    "search": frozenset({"costmodel", "space", "tabular"}) | GROUND,
    "hardware": frozenset({"space"}) | GROUND,
    "train": frozenset({"hardware", "space", "tabular"}) | GROUND,
    # compressions applied to a built network (untrained to measure, trained to deliver); fine-tuning
    # and distillation reuse the trainer (DESIGN.md: study -> compress)
    "compress": frozenset({"hardware", "space", "tabular", "train"}) | GROUND,
    "study": _STUDY_AND_BELOW - {"study"},
    "bench": _STUDY_AND_BELOW,
    "report": _STUDY_AND_BELOW,
    # export with verification and re-measurement, the run-time selector (DESIGN.md)
    "deploy": _STUDY_AND_BELOW,
    # Keras 3, the second framework (issue 15): its adapter implements study._framework's boundary and
    # its Tuner runs a Study, so it sits beside deploy/report above study. study finds the adapter by
    # name (study._framework.FRAMEWORKS), as a plugin, and never imports hwtune.keras itself
    "keras": _STUDY_AND_BELOW,
    # the measurement agent runs on a target device: the hardware layer's meters and runners, no study
    "agent": frozenset({"hardware", "space"}) | GROUND,
    "cli": frozenset({"*"}),
    ROOT: frozenset({"*"}),  # lazily only: see LAZY_ONLY
}
"""Layer -> the layers of hwtune it may import (besides itself; ``*``: any). A sub-package missing here
is a violation: add its row when you add it."""

FORBIDDEN_EXTERNAL: dict[str, frozenset[str]] = {
    "torch": frozenset({"search", "costmodel", "space", "tabular", "vocabulary", "exceptions"}),
    "torchvision": frozenset({"search", "costmodel", "space", "tabular", "vocabulary", "exceptions"}),
    "optuna": frozenset({"hardware", "costmodel", "vocabulary", "exceptions", "agent"}),
}
"""Top-level distribution -> the layers that never import it (not even lazily)."""

LAZY_ONLY: dict[tuple[str, str], str] = {
    # SearchSpace is what hands Optuna its distributions (suggest(trial), to_distribution()):
    # optuna is imported where a distribution is asked for, so `import hwtune.space` stays free of it
    ("space", "optuna"): "space builds Optuna distributions only where one is asked for",
    (ROOT, "hwtune"): "`import hwtune` is fast: its names load on first use",
    (ROOT, "torch"): "`import hwtune` is fast",
    (ROOT, "optuna"): "`import hwtune` is fast",
}
"""(layer, imported top-level name or ``hwtune``) -> why it may be imported only lazily."""

KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
}
"""(importing module, imported module or its package) -> why it is tolerated for now."""


# -- the graph ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module name (``hwtune.study``, ``torch.nn``)."""

    target: str
    line: int = 0
    lazy: bool = False
    """Inside a function (runs when called, not when the module is imported)."""
    type_checking: bool = False
    """Under ``if TYPE_CHECKING:`` (never runs)."""

    @property
    def where(self) -> str:
        return "TYPE_CHECKING" if self.type_checking else "function-level" if self.lazy else "module-level"


def module_names(src: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``src`` (packages by their ``__init__.py``)."""
    out: dict[str, Path] = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, *, is_package: bool = False, modules: Iterable[str] = ()) -> list[Import]:
    """Every import of ``source`` (the text of ``module``); ``from a import b`` is ``a.b`` when that is
    one of ``modules``, else ``a``."""
    known = set(modules)
    scan_calls = "import_module" in source  # else expressions hold no import: skip them (4x faster)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def add(target: str, node: ast.AST, lazy: bool, tc: bool) -> None:
        found.append(Import(target, getattr(node, "lineno", 0), lazy, tc))

    def visit(node: ast.AST, lazy: bool, tc: bool) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name, node, lazy, tc)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            for s in subs:
                add(s, node, lazy, tc)
            if len(subs) < len(node.names):
                add(base, node, lazy, tc)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                add(node.args[0].value, node, lazy, tc)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, lazy, True)
            for child in node.orelse:
                visit(child, lazy, tc)
            return
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            if scan_calls or not isinstance(child, ast.expr):
                visit(child, inner, tc)

    visit(ast.parse(source), False, False)
    return found


def import_graph(src: Path = SRC) -> dict[str, list[Import]]:
    """Module -> its imports, for every module of the ``hwtune`` package under ``src``."""
    files = {m: p for m, p in module_names(src).items() if m == "hwtune" or m.startswith("hwtune.")}
    return {m: imports_of(p.read_text(), m, is_package=p.name == "__init__.py", modules=files) for m, p in files.items()}


# -- the checker -------------------------------------------------------------------------------------
def layer_of(module: str) -> str:
    """``hwtune.search._hwsampler`` -> ``search``; ``hwtune`` -> :data:`ROOT`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _top(target: str) -> str:
    return target.split(".")[0]


def _known(module: str, target: str) -> bool:
    return any(m == module and (target == t or target.startswith(t + ".")) for m, t in KNOWN_EXCEPTIONS)


def rule_violations(graph: Mapping[str, Sequence[Import]]) -> list[str]:
    """Imports against :data:`LAYERS`, :data:`FORBIDDEN_EXTERNAL` and :data:`LAZY_ONLY`, one line each."""
    out: list[str] = []
    for module in sorted(graph):
        layer = layer_of(module)
        if layer not in LAYERS:
            out.append(f"{module}: layer {layer!r} has no row in LAYERS (say what it may import)")
            continue
        for imp in graph[module]:
            top = _top(imp.target)
            if _known(module, imp.target):
                continue
            where = f"{module}:{imp.line}: {imp.where} import of {imp.target}"
            if top == "hwtune":
                if imp.target not in graph:
                    out.append(f"{where}: no such module in src/hwtune (moved or renamed?)")
                    continue
                target_layer = layer_of(imp.target)
                allowed = LAYERS[layer]
                if target_layer != layer and "*" not in allowed and target_layer not in allowed:
                    out.append(f"{where}: layer {layer} may not import {target_layer}")
            elif layer in FORBIDDEN_EXTERNAL.get(top, ()):
                out.append(f"{where}: {layer} never imports {top}")
            lazy_key = (layer, top)
            if lazy_key in LAZY_ONLY and not (imp.lazy or imp.type_checking):
                out.append(f"{where}: {layer} may import {top} only lazily ({LAZY_ONLY[lazy_key]})")
    return out


def runtime_edges(graph: Mapping[str, Sequence[Import]]) -> dict[str, dict[str, Import]]:
    """Module -> imported hwtune module -> the import, for imports that run (TYPE_CHECKING left out),
    with the packages a target's import runs first (``a.b`` for ``a.b.c`` imported from outside ``a.b``)."""
    edges: dict[str, dict[str, Import]] = {m: {} for m in graph}
    for module, imports in graph.items():
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        for imp in imports:
            if imp.type_checking or _top(imp.target) != "hwtune" or imp.target not in graph:
                continue
            parts = imp.target.split(".")
            for i in range(2, len(parts) + 1):
                t = ".".join(parts[:i])
                if t in graph and t not in own and t not in edges[module]:
                    edges[module][t] = imp
    return edges


def find_cycles(graph: Mapping[str, Sequence[Import]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules that import each other."""
    edges = runtime_edges(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    cycles = []
    for group in sorted(groups):
        members, start = set(group), group[0]
        prev: dict[str, str] = {}
        queue = deque([start])
        while queue:  # shortest way back to start inside the group
            v = queue.popleft()
            for w in sorted(edges[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    cycles.append([start, *reversed(path[:-1]), start])
                    queue.clear()
                    break
                if w in members and w not in prev and w != start:
                    prev[w] = v
                    queue.append(w)
    return cycles


def format_cycle(cycle: Sequence[str], graph: Mapping[str, Sequence[Import]]) -> str:
    """``cycle: a -> b (line 12, function-level) -> a (line 3, module-level)``."""
    edges = runtime_edges(graph)
    steps = [cycle[0]]
    for a, b in zip(cycle, cycle[1:]):
        imp = edges[a][b]
        steps.append(f"{b} (line {imp.line} of {a.rpartition('.')[2] or a}, {imp.where})")
    return "cycle: " + " -> ".join(steps)


def check(graph: Mapping[str, Sequence[Import]]) -> list[str]:
    """Every broken rule and every import cycle of ``graph``, one line each (empty: all is well)."""
    return rule_violations(graph) + [format_cycle(c, graph) for c in find_cycles(graph)]


# -- the tests ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph()


def test_hwtune_follows_the_layer_and_framework_rules(graph: dict[str, list[Import]]) -> None:
    assert "hwtune.search" in graph and "hwtune.study" in graph  # the walk found the package
    problems = rule_violations(graph)
    assert not problems, "imports against the rules of docs/architecture.md:\n" + "\n".join(problems)


def test_hwtune_has_no_import_cycles(graph: dict[str, list[Import]]) -> None:
    cycles = [format_cycle(c, graph) for c in find_cycles(graph)]
    assert not cycles, "import cycles (module- and function-level imports):\n" + "\n".join(cycles)


def test_known_exceptions_are_still_needed(graph: dict[str, list[Import]]) -> None:
    # an entry whose module is gone is left alone (moves land in steps); one that no longer applies is not
    stale = [(m, t) for m, t in KNOWN_EXCEPTIONS if m in graph and not any(_known(m, i.target) for i in graph[m])]
    assert not stale, f"KNOWN_EXCEPTIONS no longer needed, remove them: {stale}"


def test_the_checker_fails_on_bad_imports(graph: dict[str, list[Import]]) -> None:
    bad = {m: list(v) for m, v in graph.items()}
    bad["hwtune.search._x"] = [Import("hwtune.study", 3, lazy=True)]
    bad["hwtune.space._y"] = [Import("torch", 5, type_checking=True)]
    bad["hwtune.hardware._z"] = [Import("optuna.trial", 7, lazy=True)]
    bad["hwtune.costmodel._a"] = [Import("hwtune.costmodel._b", 1)]
    bad["hwtune.costmodel._b"] = [Import("hwtune.costmodel._c", 2, lazy=True)]
    bad["hwtune.costmodel._c"] = [Import("hwtune.costmodel._a", 4)]
    bad["hwtune.space._w"] = [Import("optuna", 9)]
    bad["hwtune.gadgets"] = [Import("hwtune.space", 1)]
    bad["hwtune.vocabulary"] = [*graph["hwtune.vocabulary"], Import("hwtune.exceptions", 11)]
    before = set(check(graph))  # the checker is tested even while the package has problems of its own
    new = [p for p in check(bad) if p not in before]
    problems = "\n".join(new)
    assert "hwtune.search._x:3: function-level import of hwtune.study: layer search may not import study" in problems
    assert "hwtune.space._y:5: TYPE_CHECKING import of torch: space never imports torch" in problems
    assert "hwtune.hardware._z:7: function-level import of optuna.trial: hardware never imports optuna" in problems
    assert "hwtune.space._w:9: module-level import of optuna: space may import optuna only lazily" in problems
    assert "hwtune.gadgets: layer 'gadgets' has no row in LAYERS" in problems
    assert "hwtune.vocabulary:11: module-level import of hwtune.exceptions: layer vocabulary may not import exceptions" in problems
    assert (
        "cycle: hwtune.costmodel._a -> hwtune.costmodel._b (line 1 of _a, module-level)"
        " -> hwtune.costmodel._c (line 2 of _b, function-level) -> hwtune.costmodel._a (line 4 of _c, module-level)"
    ) in problems
    assert len(new) == 7, problems


def test_the_parser_sees_lazy_type_checking_and_relative_imports() -> None:
    source = '''
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING
from . import _pool, helper
from ..space import SearchSpace
if TYPE_CHECKING:
    import torch
else:
    import numpy
def f():
    from hwtune.study import Study
    return importlib.import_module("hwtune.train")
class C:
    def g(self):
        import optuna.samplers
'''
    found = imports_of(source, "hwtune.search._x", modules={"hwtune.search._pool", "hwtune.space"})
    got = {(i.target, i.where) for i in found}
    assert {
        ("hwtune.search._pool", "module-level"),
        ("hwtune.search", "module-level"),
        ("hwtune.space", "module-level"),
        ("torch", "TYPE_CHECKING"),
        ("numpy", "module-level"),
        ("hwtune.study", "function-level"),
        ("hwtune.train", "function-level"),
        ("optuna.samplers", "function-level"),
    } <= got
    problems = rule_violations({"hwtune.search._x": found, "hwtune.search": [], "hwtune.search._pool": [], "hwtune.space": [],
                                "hwtune.study": [], "hwtune.train": []})
    assert len([p for p in problems if "may not import" in p]) == 2  # study and train, function-level both
    assert any("search never imports torch" in p for p in problems)


def test_a_package_init_imported_from_outside_closes_a_cycle() -> None:
    g = {
        "hwtune.costmodel": [Import("hwtune.costmodel._online", 1)],
        "hwtune.costmodel._online": [Import("hwtune.space._candidates", 2)],
        "hwtune.space": [Import("hwtune.space._params", 1)],
        "hwtune.space._params": [Import("hwtune.costmodel._base", 3, lazy=True)],
        "hwtune.space._candidates": [],
        "hwtune.costmodel._base": [],
    }
    assert find_cycles(g) == [["hwtune.costmodel", "hwtune.costmodel._online", "hwtune.space", "hwtune.space._params", "hwtune.costmodel"]]
    g["hwtune.space._params"] = [Import("hwtune.costmodel._base", 3, type_checking=True)]
    assert find_cycles(g) == []
