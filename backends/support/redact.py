"""Credentials never printed, control characters never interpreted.

`redact` masks what a URL carries as a secret — its userinfo (`user:pass@`, a token as the user
of a git remote) and token-like query parameters (`?token=`, `X-Amz-Signature=` …) — wherever it
appears in a text. `credential_in_url` names the kind of secret a configured URL carries, so the
workspace can refuse it at load. `escape_control` makes a stored actor, reason or name printable:
an ESC or a newline in `--actor` must not repaint the terminal or forge an audit row.

stdlib only: the CLI's error path and the rollback path use it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

# query parameters whose value is a credential (AWS presigned URLs sign with X-Amz-*)
SECRET_PARAMS = re.compile(
    r"(?:token|access_token|id_token|refresh_token|auth|authorization|password|passwd|pwd|secret|"
    r"client_secret|api_key|apikey|api-key|key|sig|signature|x-amz-[a-z0-9-]+)", re.IGNORECASE)

# scheme://userinfo@ — the userinfo stops at the first '/', '?', '#', '@' or space
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@")
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^&#\s\"'<>]*)")
# a bare user that names an account, not a secret (ssh://git@host, http://alice@host)
_PLAIN_USER = re.compile(r"[a-z][a-z0-9._-]{0,15}")


def _mask_userinfo(match: re.Match) -> str:
    userinfo = match["userinfo"]
    if ":" not in userinfo and _PLAIN_USER.fullmatch(userinfo):
        return match.group(0)
    return f"{match['scheme']}{MASK}@"


def _mask_param(match: re.Match) -> str:
    if SECRET_PARAMS.fullmatch(match["name"]) and match["value"]:
        return f"{match['lead']}{match['name']}={MASK}"
    return match.group(0)


def redact(text: Any) -> Any:
    """The text with every URL credential masked; anything that is not a str comes back as is."""
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    return _PARAM.sub(_mask_param, _USERINFO.sub(_mask_userinfo, text))


def redact_obj(value: Any) -> Any:
    """redact() through dicts, lists and tuples (JSON output, audit details)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k): redact_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_obj(v) for v in value]
    return value


def credential_in_url(value: str) -> str | None:
    """What secret the URL carries ('user:password@', 'query parameter token'), or None."""
    if not isinstance(value, str) or "://" not in value:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.password is not None:
        return "a user:password@ part"
    if parts.username is not None and not _PLAIN_USER.fullmatch(parts.username):
        return "a token as its user@ part"
    for name, secret in parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_PARAMS.fullmatch(name) and secret:
            return f"a secret in its query parameter {name!r}"
    return None


# C0 and C1 controls, DEL, and the invisible bidi/line-separator characters that reorder or
# split what a terminal shows
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def escape_control(text: Any) -> str:
    """The text with every control character written as an escape (\\n, \\x1b, \\u202e …)."""
    text = "" if text is None else str(text)
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m[0]) or (f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100
                                                       else f"\\u{ord(m[0]):04x}"), text)


def clip(text: str, limit: int = 80) -> str:
    """At most `limit` characters of text, saying how long it was when cut."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def safe_line(text: Any, limit: int = 600) -> str:
    """One printable, redacted line of at most about `limit` characters: for error messages."""
    return clip(escape_control(redact(str(text))), limit)
