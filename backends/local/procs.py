"""Kept for imports written before the helper moved: the one copy is backends/procutil.py."""

from backends.procutil import alive

__all__ = ["alive"]
