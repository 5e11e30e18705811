"""init · demo · datasets"""

from __future__ import annotations

from backends.base import BadInputError, check_name
from backends.capabilities import CreatesSchema
from console.cli import _open_console
from console.commands.common import Context, table

# mrc's modules that this file's handlers run (release, rollout, evaluate …) are imported inside
# them: every command module is imported to build `mrc --help` and `mrc rollback`'s parser, which
# must not pay for them (--help: ~70 ms of CPU as is, ~300 ms with them at the top). Light modules
# that --help loads anyway are imported above.


def register(sub, common) -> None:
    p = common(sub.add_parser("init", help="create an empty workspace (mrc.toml, mrc.db, artifacts/, data/, runs/)"))
    p.set_defaults(handler=cmd_init)

    p = common(sub.add_parser("demo", help="build the demo workspace (real data, real training) and open the console"))
    p.add_argument("--no-tui", action="store_true", help="build it and stop, without opening the console")
    p.add_argument("--force", action="store_true", help="rebuild even if the workspace already holds the demo")
    p.set_defaults(handler=cmd_demo)

    p = common(sub.add_parser("datasets", help="versioned datasets of the workspace with their hashes"))
    p.set_defaults(handler=cmd_datasets)
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    a = common(dsub.add_parser("add", help="register a numeric CSV/Parquet file as a new, immutable dataset version"))
    a.add_argument("ref", metavar="NAME@VERSION")
    a.add_argument("file", metavar="FILE")
    a.add_argument("--label", default="", help="the label column (training's target)")
    a.add_argument("--parent", default="", metavar="NAME@VERSION", help="the version this one derives from")
    a.add_argument("--note", default="", help="a line saying what this version is")
    a.set_defaults(handler=cmd_datasets_add)


def cmd_init(ctx: Context) -> int:
    from console.workspace import Workspace, resolve_dir

    ctx.require_write("init")
    root = resolve_dir(ctx.args.workspace)
    Workspace.init(root)
    ws = Workspace.open(root)
    ws.local().create_tables()  # datasets, canary state and audit live here whatever the registry
    registry = ws.registry()
    if isinstance(registry, CreatesSchema):
        registry.ensure_schema()
    ws.audit().ensure_schema()
    ctx.emit({"workspace": str(root)}, f"workspace ready: {root}")
    return 0


def demo_ready(root) -> bool:
    from pathlib import Path

    from console.demo import MODEL

    db = Path(root) / "mrc.db"
    if not db.exists():
        return False
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT 1 FROM pointers WHERE model = ? AND alias = 'production'", (MODEL,)).fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def cmd_demo(ctx: Context) -> int:
    from console.workspace import resolve_dir

    ctx.require_write("demo")
    root = resolve_dir(ctx.args.workspace)
    if ctx.args.force or not demo_ready(root):
        from console.demo import build

        build(root, actor=ctx.actor, force=ctx.args.force, progress=lambda m, f: ctx.progress(m, f))
    elif not ctx.json:
        ctx.progress(f"demo workspace already built: {root} (use --force to rebuild)")
    ctx.emit({"workspace": str(root)}, None)
    if ctx.args.no_tui or ctx.json:
        return 0

    ctx.args.workspace = str(root)
    return _open_console(ctx.args)


def cmd_datasets(ctx: Context) -> int:
    datasets = ctx.workspace.datasets().list()
    ctx.emit({"datasets": [d.to_dict() for d in datasets]}, lambda: table(
        ["dataset", "rows", "sha256", "parent", "note"],
        [[d.ref, d.rows, d.sha256[:12], d.parent or "-", d.note] for d in datasets]))
    return 0


def cmd_datasets_add(ctx: Context) -> int:
    """Copy a file into the dataset store as name@version (read through the data-source seam,
    checked whole before anything is written)."""
    import numpy as np  # numpy: ~0.08 s

    args = ctx.args
    ctx.require_write("datasets add")
    name, sep, version = args.ref.partition("@")
    if not sep:
        raise BadInputError(f"dataset {args.ref!r}: expected NAME@VERSION")
    check_name(name, "dataset")
    check_name(version, "dataset version")
    ws = ctx.workspace
    store = ws.datasets()
    if any(d.name == name and d.version == version for d in store.list()):
        raise BadInputError(f"dataset {args.ref}: already exists (datasets are immutable: add a new version)")
    if args.parent:
        store.get(args.parent)
    table_ = ws.load_table(args.file)
    if table_.rows == 0:
        raise BadInputError(f"{args.file}: no rows")
    if args.label and args.label not in table_.columns:
        raise BadInputError(f"{args.file}: --label {args.label!r} is not one of its columns")
    columns = list(table_.columns)
    try:
        data = np.column_stack([np.asarray(table_.data[c], dtype=float) for c in columns])
    except (TypeError, ValueError):
        bad = next((c for c in columns if not _numeric(table_.data[c])), "?")
        raise BadInputError(f"{args.file}: column {bad!r} is not numeric (the dataset store keeps numeric CSVs)") from None
    finite = np.isfinite(data)
    if not finite.all():  # the store keeps finite numbers: inf or nan would become an immutable dataset
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise BadInputError(f"{args.file}: column {columns[col]!r} row {row + 1}: {float(data[row, col])} is not a finite "
                            "number (the dataset store keeps finite numeric values)")
    log = ws.audit()

    def audited(conn, ds) -> None:  # the event commits with the row: neither without the other
        log.append_in(conn, ctx.actor, "dataset.add", "", "", {"dataset": ds.ref, "sha256": ds.sha256,
                                                               "rows": ds.rows, "source": str(args.file)})

    ds = store.add(name, version, columns, data, label=args.label, parent=args.parent, note=args.note,
                   in_transaction=audited)
    ctx.emit(ds.to_dict(), f"dataset {ds.ref}: {ds.rows} rows, sha256 {ds.sha256[:12]}")
    return 0


def _numeric(values) -> bool:
    import numpy as np  # numpy: ~0.08 s

    try:
        np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return False
    return True
