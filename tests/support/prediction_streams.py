"""Prediction streams for the monitor's source tests: the demo's breast-cancer features, read from
sklearn itself (never mrc's helpers), some scaled upstream."""

from __future__ import annotations

import numpy as np

# the demo's v3-drifted features: scaled ×1.6 upstream in a shifted stream
SCALED = ["mean_texture", "mean_fractal_dimension", "symmetry_error", "worst_smoothness", "mean_compactness"]


def rows(n: int, scale: float, seed: int):
    """(columns, rows) of the breast-cancer data as the demo keeps it, from sklearn itself."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    keep = [i for i, name in enumerate(raw.feature_names)
            if any(k in name for k in ("texture", "smoothness", "symmetry", "fractal"))]
    keep += [list(raw.feature_names).index(name) for name in ("mean compactness", "radius error")]
    columns = [raw.feature_names[i].replace(" ", "_") for i in keep]
    rng = np.random.default_rng(seed)
    data = raw.data[rng.integers(0, len(raw.data), n)][:, keep].copy()
    for name in SCALED:
        data[:, columns.index(name)] *= scale
    return columns, data
