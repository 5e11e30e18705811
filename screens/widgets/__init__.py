"""Reusable widgets: the virtual table, the filter line, the health panel."""
