"""The end-to-end tier: the real demo build (torch training), the tmux walk-through, a real k8s control plane."""

from __future__ import annotations

from tests.support.tiers import mark_folder


def pytest_collection_modifyitems(items):
    mark_folder(items, __file__, "e2e")
