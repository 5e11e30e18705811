"""Running `mrc` from a test: in process (invoke: `console.cli.main(argv)`, the default for the
`mrc` fixture) or as a real process (run_process, for what only a process proves: signals,
kill -9, start-up imports and time, concurrent racers, servers), and proving a command changed
nothing (tree_digest)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mrc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MRC_ACTOR", "tester")
    env.pop("MRC_WORKSPACE", None)
    env.update(extra or {})
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        import json

        return json.loads(self.stdout)


def run_mrc(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None) -> Result:
    """`python -m console.cli ARGS` as a real process, from the repository root."""
    proc = subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          env=mrc_env(env), timeout=timeout, input=input, cwd=str(REPO))
    return Result(proc.returncode, proc.stdout, proc.stderr)


run_process = run_mrc  # the name for the tests where a process is the point (signals, start-up, races)


class _Stdin(io.StringIO):
    """What a piped stdin looks like to the command (not a terminal)."""

    def isatty(self) -> bool:
        return False


def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None) -> Result:
    """`mrc ARGS` in this process: console.cli.main(argv) with the environment, working folder,
    stdin, stdout and stderr a real process would have (as run_mrc sets them up), all restored
    afterwards. SystemExit (argparse's usage errors, --help) becomes the exit code; an exception
    that escapes main becomes exit 1 with its traceback on stderr, as the interpreter would do.
    `timeout` is accepted for run_mrc's signature; pytest-timeout bounds a test that hangs."""
    from console.cli import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_argv = sys.argv
    out, err = io.StringIO(), io.StringIO()
    stdin = _Stdin(input or "")
    code: int
    try:
        os.environ.clear()
        os.environ.update(mrc_env(env))
        os.chdir(REPO)
        sys.argv = ["mrc", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _swap_stdin(stdin):
            try:
                code = int(main(list(args)) or 0)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except Exception:  # noqa: BLE001  (what an uncaught exception does to a process)
                traceback.print_exc(file=sys.stderr)
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
    return Result(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def _swap_stdin(stdin):
    saved = sys.stdin
    sys.stdin = stdin
    try:
        yield
    finally:
        sys.stdin = saved


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root: to prove a command changed nothing."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
