"""The domain's refusals, below every cluster (release, rollout, the CLI) so none imports another for them.

The backend errors (BackendError, BadInputError, ConflictError …) live in backends/base.py; these
are the domain's own: console/cli.py maps each to its exit code.
"""

from __future__ import annotations

from backends.base import BackendError


class PolicyRefusal(Exception):
    """The action is refused by policy (failed gates, not approved): exit code 1."""


class PolicyViolation(PolicyRefusal):
    """Refused by a protected alias's rule (a PolicyRefusal: exit 1, one line)."""


class LockTimeout(BackendError):
    """The workspace's write lock stayed held past the configured wait (exit 4)."""
