"""A test hook that holds a process at a named point until a file appears (stdlib only).

`MRC_STALL_AT=<point>` and `MRC_STALL_FILE=<path>`: on reaching <point> the process creates
`<path>.reached` and waits until `<path>` exists, so a test can act inside a race window and
then let the process go on, with nothing decided by a clock. Unset (always, outside tests), it
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MAX_WAIT_S = 300.0  # a forgotten release must not hang a process forever


def stall_point(point: str) -> None:
    if os.environ.get("MRC_STALL_AT") != point:
        return
    release = os.environ.get("MRC_STALL_FILE")
    if not release:
        return
    Path(release + ".reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + MAX_WAIT_S
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
