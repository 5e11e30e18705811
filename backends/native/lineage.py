"""Where a training run's code came from: the git commit of this checkout, else a digest of the trainer."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from backends.support.redact import redact

TRAINER_SOURCES = ("backends/native/trainer.py", "backends/native/mlp.py")


def code_identity() -> tuple[str, str]:
    """(code_commit, code_repo) of the training code: git when we run from a checkout,
    else a digest of the trainer's source, so the lineage never says "unknown"."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
        if len(commit) == 40:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *TRAINER_SOURCES],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            remote = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                                    capture_output=True, text=True, timeout=5).stdout.strip()
            # a remote may carry an access token (https://TOKEN@host/…): lineage keeps it masked
            return commit + ("-dirty" if dirty else ""), redact(remote) or str(root)
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for rel in TRAINER_SOURCES:
        digest.update((root / rel).read_bytes())
    return "sha256:" + digest.hexdigest()[:40], "model-release-console (installed)"
