"""Stdlib-only helpers both the domain and the backends import (time, SQLite files, processes)."""
