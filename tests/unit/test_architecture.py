"""The architecture, checked (docs/architecture.md): the import-linter contracts in pyproject.toml
hold, and mrc's own modules import each other without a cycle, at the top or inside a function."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("console", "screens", "backends")

# A cycle that exists today, with what unties it; the test fails when a new one appears and when
# one of these is gone (so the list only shrinks).
KNOWN_CYCLES = {
    # task_gates builds on gates (GatePolicy, seed_checks); gates.evaluate_files reads a task's
    # policy back through task_gates.load_task_policy. To untie: evaluate_files into task_gates.
    frozenset({"console.evaluate.gates", "console.evaluate.task_gates"}),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the mrc modules it imports, from every import statement anywhere in the file
    (module level, inside functions, under `if`), except `if TYPE_CHECKING:` blocks."""
    files = {module_name(p, root): p for top in ROOTS if (root / top).is_dir() for p in (root / top).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def known(name: str) -> str:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        base = ".".join(parts + ([child.module] if child.module else []))
                    # `from pkg import sub` imports the submodule when there is one
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in child.names]
                for target in targets:
                    if target.split(".")[0] in ROOTS and known(target) not in ("", name):
                        graph[name].add(known(target))
                visit(child)

        visit(ast.parse(path.read_text(), str(path)))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycle_among_mrcs_modules():
    found = {frozenset(c) for c in cycles(import_graph(REPO))}
    assert found - KNOWN_CYCLES == set(), f"new import cycle(s): {[sorted(c) for c in found - KNOWN_CYCLES]}"
    assert KNOWN_CYCLES - found == set(), f"untied, drop from KNOWN_CYCLES: {[sorted(c) for c in KNOWN_CYCLES - found]}"


def test_the_cycle_finder_sees_a_deferred_cycle_and_a_relative_one(tmp_path):
    (tmp_path / "console" / "evaluate").mkdir(parents=True)
    (tmp_path / "screens").mkdir()
    (tmp_path / "console" / "__init__.py").write_text("")
    (tmp_path / "console" / "evaluate" / "__init__.py").write_text("")
    (tmp_path / "console" / "a.py").write_text("import os\nfrom console.evaluate import b\n")
    # deferred, inside a method: still an edge
    (tmp_path / "console" / "evaluate" / "b.py").write_text(
        "class B:\n    def f(self):\n        from console.a import x\n")
    (tmp_path / "screens" / "one.py").write_text("from . import two\n")
    (tmp_path / "screens" / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from screens import one\n")
    graph = import_graph(tmp_path)
    assert graph["console.evaluate.b"] == {"console.a"} and graph["screens.one"] == {"screens.two"}
    assert cycles(graph) == [{"console.a", "console.evaluate.b"}]  # the TYPE_CHECKING edge does not count


def test_the_import_contracts_hold(capsys):
    """`lint-imports` with pyproject.toml's [tool.importlinter] contracts, in process."""
    sys.path.insert(0, str(REPO))
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(REPO))
    report = capsys.readouterr().out
    assert code == 0, report
    assert "6 kept, 0 broken" in report, report


def test_a_broken_contract_fails_the_linter(tmp_path, capsys):
    """The linter sees mrc's graph: a contract the code breaks (the CLI imports its commands) fails."""
    config = tmp_path / "broken.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["console", "screens", "backends"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "cli never imports its commands"\n'
                      'type = "forbidden"\nsource_modules = ["console.cli"]\nforbidden_modules = ["console.commands"]\n')
    sys.path.insert(0, str(REPO))
    try:
        code = lint_imports(config_filename=str(config), no_cache=True, no_logo=True)
    finally:
        sys.path.remove(str(REPO))
    report = capsys.readouterr().out
    assert code != 0 and "console.cli -> console.commands" in report, report
