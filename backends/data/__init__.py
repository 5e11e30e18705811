"""Data sources: where test, golden and reference data live (found by scheme in console/plugins.py)."""
