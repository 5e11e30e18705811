"""Process liveness, stdlib only: shared by the console (its `mrc serve` children) and the local
backends (trainers, model servers, the router). It lives beside the protocols so console/ can
import it without reaching into a concrete backend (tests/foundation/test_no_side_doors.py)."""

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


def group_alive(pgid: int) -> bool:
    """True while any process of the group runs (a server's own children, e.g. MLflow's uvicorn
    workers, outlive their leader for a moment); zombies count as gone."""
    if pgid <= 0:
        return False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
