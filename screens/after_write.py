"""What a screen's worker does right after its write committed: on-call alerts out (the same
best-effort delivery as the CLI's, under [alerts] deadline_s). Called in the worker, after the
write and after its result message is posted, never before the move."""

from __future__ import annotations

from console.notify.delivery import after_write


def deliver_alerts(ws, actor: str) -> None:
    """Nothing (not even an import) where mrc.toml has no [alerts]; never raises."""
    try:
        if not isinstance(ws.config.get("alerts"), dict):
            return
    except Exception:  # noqa: BLE001  (no config to read: nothing to deliver)
        return

    after_write(ws, actor=actor)
