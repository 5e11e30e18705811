"""Process liveness for the console's own children (the `mrc serve` sessions). stdlib only;
the local backends keep their own copy (backends/local/procs.py): console/ never imports them."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    if pid <= 0:  # kill(0 or -n, 0) would ask about a whole process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    # a zombie still answers kill(0); /proc tells the truth on Linux. rsplit: the command name may hold ") "
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
