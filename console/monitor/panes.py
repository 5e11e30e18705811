"""Per-minute panes of bin counts: pure (a batch of records in, counts out; no I/O).

A pane is one (version, minute) of traffic, one int64 vector (`Layout`):
    [records, units, feature counts F×WIDTH, unit feature counts F×WIDTH,
     prediction counts PRED_WIDTH, unit prediction counts PRED_WIDTH, KMV_K smallest row hashes]
The row hashes (a k-minimum-values sketch of the feature rows) estimate how many distinct rows a
window holds: a replay of 142 rows is 142 observations however often it is sent, and the tier's
noise margin uses that number.
"Units" count each routing key (a user) once per pane, its first record there: the statistics
that decide read those, so a heavy user weighs as one user (records without a key are each
their own unit). A window (1 h, 24 h, 7 d) is the sum of its panes; panes merge by addition,
so two monitors' panes of one stream add up to the panes of the whole stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from console.monitor.profile import PRED_WIDTH, WIDTH, Profile, bin_feature, bin_prediction

PANE_S = 60
KMV_K = 256
EMPTY = -1  # an unused sketch slot (uint64 max as int64)


@dataclass(frozen=True)
class Layout:
    features: int

    @property
    def counts(self) -> int:
        return 2 + 2 * self.features * WIDTH + 2 * PRED_WIDTH

    @property
    def size(self) -> int:
        return self.counts + KMV_K

    def sketch(self, v: np.ndarray) -> np.ndarray:
        return v[..., self.counts:]

    def feature_counts(self, v: np.ndarray, units: bool = True) -> np.ndarray:
        """(..., F, WIDTH) counts of pane vectors v (..., size)."""
        fw = self.features * WIDTH
        start = 2 + (fw if units else 0)
        return v[..., start:start + fw].reshape(v.shape[:-1] + (self.features, WIDTH))

    def prediction_counts(self, v: np.ndarray, units: bool = True) -> np.ndarray:
        start = 2 + 2 * self.features * WIDTH + (PRED_WIDTH if units else 0)
        return v[..., start:start + PRED_WIDTH]

    @staticmethod
    def records(v: np.ndarray):
        return v[..., 0]

    @staticmethod
    def units(v: np.ndarray):
        return v[..., 1]


def fold(profile: Profile, t: np.ndarray, versions: np.ndarray, keys: np.ndarray, ids: np.ndarray,
         features: dict[str, np.ndarray], prediction: np.ndarray, pane_s: int = PANE_S
         ) -> dict[tuple[str, int], np.ndarray]:
    """The panes of one batch: {(version, pane start / pane_s): vector}. A feature the profile
    has and the batch lacks counts as missing; a batch feature the profile lacks is ignored."""
    layout = Layout(len(profile.features))
    n = len(t)
    if n == 0:
        return {}
    minute = np.floor(np.asarray(t, dtype=float) / pane_s).astype(np.int64)
    versions = np.asarray(versions, dtype=object)
    vnames, vcode = np.unique(np.where(versions == None, "", versions).astype(str), return_inverse=True)  # noqa: E711
    group_key = vcode.astype(np.int64) * (1 << 40) + (minute - minute.min())
    groups, g = np.unique(group_key, return_inverse=True)
    G = len(groups)
    # a unit: the key, else the record itself (its id)
    keys = np.asarray(keys, dtype=object)
    keyless = keys == None  # noqa: E711  (elementwise)
    ucode = np.empty(n, dtype=np.int64)
    if keyless.all():
        ucode[:] = np.arange(n)
    else:
        _, codes = np.unique(keys[~keyless].astype(str), return_inverse=True)
        ucode[~keyless] = codes
        ucode[keyless] = codes.max() + 1 + np.arange(int(keyless.sum()))  # each its own unit
    pair = g.astype(np.int64) * (int(ucode.max()) + 1) + ucode
    _, first = np.unique(pair, return_index=True)
    is_unit = np.zeros(n, dtype=bool)
    is_unit[first] = True
    out = np.zeros((G, layout.size), dtype=np.int64)
    out[:, 0] = np.bincount(g, minlength=G)
    out[:, 1] = np.bincount(g[is_unit], minlength=G)
    feat_all = layout.feature_counts(out, units=False)
    feat_unit = layout.feature_counts(out, units=True)
    from console.monitor.profile import MISSING

    for j, fb in enumerate(profile.features):
        values = features.get(fb.name)
        if values is None:
            slots = np.full(n, MISSING, dtype=np.int64)
        else:
            slots = bin_feature(fb, values)
        flat = g * WIDTH + slots
        feat_all[:, j, :] = np.bincount(flat, minlength=G * WIDTH).reshape(G, WIDTH)
        feat_unit[:, j, :] = np.bincount(flat[is_unit], minlength=G * WIDTH).reshape(G, WIDTH)
    pslots = bin_prediction(profile, prediction)
    flat = g * PRED_WIDTH + pslots
    layout.prediction_counts(out, units=False)[:] = np.bincount(flat, minlength=G * PRED_WIDTH).reshape(G, PRED_WIDTH)
    layout.prediction_counts(out, units=True)[:] = np.bincount(flat[is_unit], minlength=G * PRED_WIDTH).reshape(
        G, PRED_WIDTH)
    hashes = row_hashes(features, profile.names, n)
    order = np.lexsort((hashes, g))
    sketches = np.full((G, KMV_K), EMPTY, dtype=np.int64)
    sg, sh = g[order], hashes[order]
    keep = np.ones(n, dtype=bool)
    keep[1:] = (sg[1:] != sg[:-1]) | (sh[1:] != sh[:-1])  # distinct hashes per pane
    sg, sh = sg[keep], sh[keep]
    starts = np.searchsorted(sg, np.arange(G))
    rank = np.arange(len(sg)) - starts[sg]
    small = rank < KMV_K
    sketches[sg[small], rank[small]] = sh[small].view(np.int64)
    out[:, layout.counts:] = sketches
    result = {}
    base = minute.min()
    for row, key in enumerate(groups):
        version = str(vnames[key >> 40])
        result[(version, int(base + (key & ((1 << 40) - 1))))] = out[row]
    return result


_MIX = np.uint64(0x9E3779B97F4A7C15)


def row_hashes(features: dict[str, np.ndarray], names: list[str], n: int) -> np.ndarray:
    """A 64-bit hash of each record's feature values (the profile's features, in order), uint64."""
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j, name in enumerate(names):
            values = features.get(name)
            if values is None:
                continue
            if values.dtype.kind == "f":
                v = np.where(np.isnan(values), np.nan, values + 0.0).view(np.uint64)  # one NaN, +0 for -0
            elif values.dtype.kind in "iub":
                v = values.astype(np.float64).view(np.uint64)
            else:
                v = np.asarray([hash(repr(x)) & 0xFFFFFFFFFFFFFFFF for x in values], dtype=np.uint64)
            h = (h ^ (v + np.uint64(j + 1) * _MIX)) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
    return h


def combine(a: np.ndarray, b: np.ndarray, layout: Layout) -> np.ndarray:
    """Two panes of the same minute as one: counts add, sketches unite."""
    out = a + b
    out[layout.counts:] = unite([layout.sketch(a), layout.sketch(b)])
    return out


def unite(sketches) -> np.ndarray:
    """The KMV_K smallest distinct hashes of several sketches (EMPTY-padded)."""
    values = np.concatenate([np.asarray(s, dtype=np.int64).ravel() for s in sketches]) if len(sketches) else \
        np.zeros(0, dtype=np.int64)
    values = np.unique(values[values != EMPTY].view(np.uint64))[:KMV_K]
    out = np.full(KMV_K, EMPTY, dtype=np.int64)
    out[:len(values)] = values.view(np.int64)
    return out


def distinct_rows(sketch: np.ndarray) -> float:
    """Distinct rows behind a united sketch: exact below KMV_K, else the KMV estimate."""
    values = np.asarray(sketch, dtype=np.int64)
    values = np.sort(values[values != EMPTY].view(np.uint64))
    if len(values) < KMV_K:
        return float(len(values))
    return (KMV_K - 1) / (float(values[-1]) / 2.0 ** 64)


def merge(into: dict[tuple[str, int], np.ndarray], more: dict[tuple[str, int], np.ndarray], layout: Layout) -> None:
    for key, vector in more.items():
        if key in into:
            into[key] = combine(into[key], vector, layout)
        else:
            into[key] = vector.copy()
