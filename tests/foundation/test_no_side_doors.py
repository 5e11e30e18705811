"""One seam, no side doors: console/ and screens/ reach backends, model formats and data
sources only by name (console/workspace.py, console/plugins.py), never by importing
backends.<name> — not even lazily inside a function, where it is easy to miss."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The protocols and the shared stdlib helpers that live beside them (DESIGN.md: "shared helpers
# such as timestamps live beside the protocols"): modules, never a backend's package.
ALLOWED = {"backends", "backends.base", "backends.dbfile", "backends.procutil", "backends.stall"}


def side_doors(source: str, filename: str = "<module>") -> list[tuple[int, str]]:
    """(line, module) of every import of a concrete backend in the source, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "backends":  # from backends import local
                names = [f"backends.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if (name == "backends" or name.startswith("backends.")) and name not in ALLOWED:
                found.append((node.lineno, name))
    return found


def test_the_checker_finds_lazy_and_plain_imports():
    source = (
        "from backends.base import BadInputError\n"
        "import backends.base\n"
        "def f():\n"
        "    from backends.local.datasets import DatasetStore\n"
        "    if True:\n"
        "        import backends.mlflow.registry as r\n"
        "class C:\n"
        "    def m(self):\n"
        "        from backends import s3\n"
    )
    assert side_doors(source) == [(4, "backends.local.datasets"), (6, "backends.mlflow.registry"), (9, "backends.s3")]


def test_allowed_modules_are_helpers_not_backends():
    for name in ALLOWED - {"backends"}:
        path = REPO / (name.replace(".", "/") + ".py")
        assert path.is_file(), f"{name}: allowed as a shared helper, so it must be a module file"
        assert not side_doors(path.read_text(), str(path)) or name == "backends.base"


def test_console_and_screens_import_no_concrete_backend():
    modules = sorted([*(REPO / "console").rglob("*.py"), *(REPO / "screens").rglob("*.py")])
    assert len(modules) > 30 and REPO / "console" / "gates.py" in modules
    offenders = [f"{path.relative_to(REPO)}:{line}: imports {name}"
                 for path in modules for line, name in side_doors(path.read_text(), str(path))]
    assert offenders == [], "console/ and screens/ must reach backends through the seams:\n" + "\n".join(offenders)
