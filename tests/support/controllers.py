"""In-memory Traffic and Metrics for controller tests: the local router's compare-and-swap
contract without HTTP, so that what is under test is the controller's orchestration."""

from __future__ import annotations

from backends.base import ConflictError, HealthWindow, TrafficSplit


MODEL = "breast-cancer"


class MemoryTraffic:
    def __init__(self, stable: str):
        self.split = TrafficSplit(MODEL, {stable: 100}, 1)

    def get_split(self, model):
        return TrafficSplit(model, dict(self.split.weights), self.split.revision)

    def set_split(self, model, weights, *, expected_revision):
        if expected_revision != self.split.revision:
            raise ConflictError("stale revision")
        self.split = TrafficSplit(model, dict(weights), self.split.revision + 1)
        return self.get_split(model)

    def rollback(self, model, stable_version):
        self.split = TrafficSplit(model, {stable_version: 100}, self.split.revision + 1)
        return self.get_split(model)


class NoData:
    def health(self, model, version, start, end):
        return HealthWindow(model, version, start, end)
