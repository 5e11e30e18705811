"""Every model's overview (backends.base.ModelOverview) for the home screen: one batch read
where the registry offers `model_overviews()` (the local one: one SQLite connection for all
models), else the Registry protocol's per-model reads, which give the same records
(tests/tui/test_overview.py holds the two equal)."""

from __future__ import annotations

from typing import Any

from backends.base import PRODUCTION, ModelOverview, ModelSummary, NotFoundError
from backends.capabilities import ReadsOverviews


def model_overviews(registry, *, listings: dict[str, list[Any]] | None = None) -> list[ModelOverview]:
    """With `listings` (a dict, filled here), the per-model path also reads each model's
    list_versions() into it and takes the versions from there instead of one get_version each;
    the batch read leaves it empty."""
    if isinstance(registry, ReadsOverviews):
        return registry.model_overviews()
    overviews = []
    for summary in registry.list_models():
        listed = None
        if listings is not None:
            listed = listings[summary.name] = registry.list_versions(summary.name)
        overviews.append(overview_from_reads(registry, summary, listed))
    return overviews


def overview_from_reads(registry, summary: ModelSummary, listed: list[Any] | None = None) -> ModelOverview:
    """One model through the protocol: pointer_history, then each version an alias points at or
    production ever pointed at (one that no longer exists is left out, as the batch read's join does)."""
    history = registry.pointer_history(summary.name, PRODUCTION)
    wanted = dict.fromkeys([*summary.pointers.values(), *(m.to_version for m in history if m.to_version)])
    known = {mv.version: mv for mv in listed} if listed is not None else {}
    versions = {}
    for version in wanted:
        mv = known.get(version)
        if mv is None and listed is None:
            try:
                mv = registry.get_version(summary.name, version)
            except NotFoundError:
                mv = None
        if mv is not None:
            versions[version] = mv
    return ModelOverview(summary, history, versions)
