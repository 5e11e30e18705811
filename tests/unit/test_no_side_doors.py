"""One seam, no side doors: console/ and screens/ reach backends, model formats and data
sources only by name (console/workspace.py, console/plugins.py), never by importing
backends.<name> — not even lazily inside a function, where it is easy to miss."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The protocols and the shared pieces below every backend (DESIGN.md: "shared helpers such as
# timestamps live beside the protocols"): backends/support/ (stdlib helpers) and backends/native/
# (mrc's own datasets, MLP, trainer, metrics, lineage), never a backend's package.
ALLOWED = {"backends", "backends.base", "backends.capabilities"}
SHARED_PACKAGES = ("backends.support", "backends.native")


def allowed(name: str) -> bool:
    return name in ALLOWED or any(name == p or name.startswith(p + ".") for p in SHARED_PACKAGES)


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
            if (name == "backends" or name.startswith("backends.")) and not allowed(name):
                found.append((node.lineno, name))
    return found


def test_the_checker_finds_lazy_and_plain_imports():
    source = (
        "from backends.base import BadInputError\n"
        "import backends.base\n"
        "def f():\n"
        "    from backends.local.registry import LocalRegistry\n"
        "    if True:\n"
        "        import backends.mlflow.registry as r\n"
        "class C:\n"
        "    def m(self):\n"
        "        from backends import s3\n"
    )
    assert side_doors(source) == [(4, "backends.local.registry"), (6, "backends.mlflow.registry"), (9, "backends.s3")]


def test_shared_packages_import_no_backend():
    for package in SHARED_PACKAGES:
        folder = REPO / package.replace(".", "/")
        modules = sorted(folder.rglob("*.py"))
        assert len(modules) > 2, f"{package}: expected the shared modules there"
        for path in modules:
            assert side_doors(path.read_text(), str(path)) == [], f"{path.relative_to(REPO)} imports a backend"


def test_console_and_screens_import_no_concrete_backend():
    modules = sorted([*(REPO / "console").rglob("*.py"), *(REPO / "screens").rglob("*.py")])
    assert len(modules) > 30 and REPO / "console" / "evaluate" / "gates.py" in modules
    offenders = [f"{path.relative_to(REPO)}:{line}: imports {name}"
                 for path in modules for line, name in side_doors(path.read_text(), str(path))]
    assert offenders == [], "console/ and screens/ must reach backends through the seams:\n" + "\n".join(offenders)
