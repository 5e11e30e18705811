"""Is a canary live? One stdlib read of mrc.db's `canary_states`, for the writers that must
settle a live canary before they move production (promote, rollback, roll forward).

Stdlib only: the rollback path imports this, never the controller's statistics.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass

from backends.support.dbfile import connect_db


@dataclass(frozen=True)
class LiveCanary:
    id: str
    model: str
    status: str
    stable: str
    candidate: str
    weight: int

    def end_commands(self) -> str:
        """The exact commands that end it, for a refusal's one line."""
        return (f"`mrc canary promote {self.model}` makes {self.candidate} production through the canary; "
                f"`mrc canary abort {self.model} --reason ...` (or `mrc rollback {self.model}`) sends all "
                f"traffic back to {self.stable}")

    def refusal(self, what: str) -> str:
        return (f"{self.model}: canary of {self.candidate} is live ({self.status}, {self.weight}% to it, stable "
                f"{self.stable}); {what} refused, nothing moved. End the canary first: {self.end_commands()}")


def live_canary(db_path, model: str) -> LiveCanary | None:
    """The model's progressing or paused canary, None when mrc.db surely has none."""
    if not db_path or not os.path.exists(db_path):
        return None
    try:
        conn = connect_db(str(db_path), timeout=30)
    except sqlite3.Error:
        return None
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'canary_states'").fetchone() is None:
            return None
        row = conn.execute("SELECT state FROM canary_states WHERE model = ? AND status IN ('progressing', 'paused') "
                           "ORDER BY created DESC, rowid DESC LIMIT 1", (model,)).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    state = json.loads(row[0])
    return LiveCanary(str(state.get("id", "")), model, str(state.get("status", "")), str(state.get("stable", "")),
                      str(state.get("candidate", "")), int(state.get("weight", 0) or 0))
