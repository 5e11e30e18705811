"""Evaluation: gates, drift, validation, statistics and reports (pure where it can be)."""
