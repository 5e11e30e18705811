"""The reference profile the monitor bins live traffic on: pure (columns in, bins out).

Every feature gets WIDTH slots: value bins 0..9, then MISSING and UNSEEN.
- numeric: the reference's deciles (ties merge bins, so fewer may be used); UNSEEN counts a
  value that is not a number (a unit or type change upstream);
- categorical: the 9 most frequent reference levels, slot 9 every other reference level,
  UNSEEN a level the reference never had.
The prediction gets PRED_WIDTH slots: 20 equal bins on [0, 1] for a score (a binary model),
MISSING and UNSEEN (not a number); a regression model's predictions are binned on the deciles
of the reference's label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WIDTH = 12
VALUE_BINS = 10
MISSING, UNSEEN = 10, 11
PRED_BINS = 20
PRED_WIDTH = PRED_BINS + 2
PRED_MISSING, PRED_UNSEEN = PRED_BINS, PRED_BINS + 1
MAX_LEVELS = 10_000  # reference levels remembered to tell "other" from "new"


@dataclass
class FeatureBins:
    name: str
    kind: str  # "numeric" | "categorical"
    edges: list[float] = field(default_factory=list)  # numeric: inner edges, increasing
    levels: list[str] = field(default_factory=list)  # categorical: the top levels, slot order
    known: list[str] = field(default_factory=list)  # categorical: every reference level (bounded)
    ref: list[int] = field(default_factory=list)  # reference counts per slot (WIDTH)

    def labels(self) -> list[str]:
        """What each slot holds, for the screen and the JSON."""
        if self.kind == "numeric":
            bounds = ["-inf"] + [f"{e:.4g}" for e in self.edges] + ["inf"]
            values = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(self.edges) + 1)]
        else:
            values = list(self.levels) + ["(other)"]
        values += [""] * (VALUE_BINS - len(values))
        return values + ["(missing)", "(unseen)"]


@dataclass
class Profile:
    features: list[FeatureBins]
    pred_edges: list[float]  # inner edges of the prediction's PRED_BINS bins
    task: str = "binary"
    source: str = ""  # the data it was built from

    def to_dict(self) -> dict[str, Any]:
        return {"features": [vars(f) for f in self.features], "pred_edges": self.pred_edges, "task": self.task,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        return cls([FeatureBins(**f) for f in data["features"]], list(data["pred_edges"]), data.get("task", "binary"),
                   data.get("source", ""))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


def _as_float(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float values with NaN for missing/not a number, mask of values that are not numbers)."""
    if values.dtype.kind in "fiub":
        return values.astype(float), np.zeros(len(values), dtype=bool)
    out = np.full(len(values), np.nan)
    unseen = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
            out[i] = float(v)
        elif isinstance(v, bool):
            out[i] = float(v)
        else:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                unseen[i] = True
    return out, unseen


def _is_numeric(values: np.ndarray) -> bool:
    if values.dtype.kind in "fiub":
        return True
    floats, unseen = _as_float(values)
    return not unseen.any()


def bin_feature(fb: FeatureBins, values: np.ndarray) -> np.ndarray:
    """The slot of each value (int array)."""
    if fb.kind == "numeric":
        floats, unseen = _as_float(np.asarray(values))
        # ±inf land in the outer bins by themselves; NaN (missing) would sort last: moved to MISSING
        slots = np.searchsorted(np.asarray(fb.edges, dtype=float), floats, side="right")
        missing = np.isnan(floats)
        if missing.any():
            slots[missing] = MISSING
        if unseen.any():
            slots[unseen] = UNSEEN
        return slots.astype(np.int64, copy=False)
    index = {level: i for i, level in enumerate(fb.levels)}
    known = set(fb.known)
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[i] = MISSING
            continue
        text = _level(v)
        slot = index.get(text)
        out[i] = slot if slot is not None else (VALUE_BINS - 1 if text in known else UNSEEN)
    return out


def _level(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def bin_prediction(profile: Profile, values: np.ndarray) -> np.ndarray:
    floats = np.asarray(values, dtype=float)
    finite = np.isfinite(floats)
    slots = np.searchsorted(np.asarray(profile.pred_edges), np.where(finite, floats, 0.0), side="right")
    return np.where(finite, slots, PRED_MISSING).astype(np.int64)


def build_profile(columns: dict[str, np.ndarray], *, label: str | None = None, task: str = "binary",
                  source: str = "") -> Profile:
    """A profile of the reference data: every column but the label is a feature."""
    features = []
    for name, raw in columns.items():
        if name == label:
            continue
        values = np.asarray(raw)
        if _is_numeric(values):
            floats, _ = _as_float(values)
            finite = floats[np.isfinite(floats)]
            edges = (np.unique(np.quantile(finite, np.arange(1, VALUE_BINS) / VALUE_BINS)).tolist()
                     if len(finite) else [])
            fb = FeatureBins(name, "numeric", edges=[float(e) for e in edges])
        else:
            levels, counts = np.unique(np.asarray([_level(v) for v in values if v is not None and not (
                isinstance(v, float) and math.isnan(v))], dtype=object), return_counts=True)
            order = np.argsort(-counts, kind="stable")
            fb = FeatureBins(name, "categorical", levels=[str(levels[i]) for i in order[:VALUE_BINS - 1]],
                             known=[str(levels[i]) for i in order[:MAX_LEVELS]])
        fb.ref = np.bincount(bin_feature(fb, values), minlength=WIDTH).astype(int).tolist()
        features.append(fb)
    if task == "regression" and label is not None and label in columns:
        y = np.asarray(columns[label], dtype=float)
        y = y[np.isfinite(y)]
        pred_edges = np.unique(np.quantile(y, np.arange(1, PRED_BINS) / PRED_BINS)).tolist() if len(y) else []
    else:
        pred_edges = (np.arange(1, PRED_BINS) / PRED_BINS).tolist()
    return Profile(features, [float(e) for e in pred_edges], task, source)
