"""The per-workspace secret of the local router and model servers (stdlib only).

`<workspace>/serving/control.key`: 32 random bytes as hex, created 0600 with O_EXCL on first use
(two starters racing both end up with the one file). The servers read it from the file named by
`--key-file` (never from argv, which `ps` shows to every local user); mrc's own clients send it as
`Authorization: Bearer <key>`. A key file that others can read is refused: it would be no secret.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from backends.base import BackendError

KEY_FILE = "control.key"


def key_path(root: str | Path) -> Path:
    return Path(root) / "serving" / KEY_FILE


def ensure_key(root: str | Path) -> Path:
    """The workspace's key file, created now (0600, O_EXCL) if it does not exist yet."""
    path = key_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
    finally:
        os.close(fd)
    return path


def read_key(path: str | Path) -> str:
    path = Path(path)
    try:
        info = path.stat()
        text = path.read_text().strip()
    except OSError as exc:
        raise BackendError(f"{path}: cannot read the serving control key ({exc.strerror})") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BackendError(f"{path}: the serving control key is readable by others (chmod 600 it)")
    if len(text) < 32:
        raise BackendError(f"{path}: the serving control key is too short (delete it to make a new one)")
    return text


def auth_headers(root: str | Path, actor: str | None = None) -> dict[str, str]:
    """What mrc's own clients send to a control route: the key and who asks. No key file yet
    means no server of ours runs here (each reads it at start), so nothing is created: a read
    (`--read-only` too) writes nothing."""
    path = key_path(root)
    headers = {"Authorization": f"Bearer {read_key(path)}"} if path.exists() else {}
    who = actor if actor is not None else (os.environ.get("MRC_ACTOR") or _os_user())
    if who:
        headers["X-MRC-Actor"] = who.encode("ascii", "backslashreplace").decode()[:200]
    return headers


def _os_user() -> str:
    """Who runs this process (the effective uid's name): what a control call says when no actor
    was stated, so the router's audit rows name a person, never "(no actor stated)"."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, OSError):
        return f"uid-{os.geteuid()}"
