"""The pane fold and the window statistics, pure: counts checked against a plain per-record count."""

from __future__ import annotations

import numpy as np

from backends.base import FieldMapping
from backends.support.prediction_records import batch_from_json_lines, batch_from_records
from console.monitor.decide import MonitorConfig, compare, psi
from console.monitor.panes import Layout, fold, merge
from console.monitor.profile import MISSING, UNSEEN, WIDTH, build_profile, bin_feature


def test_profile_bins_deciles_missing_and_unseen():
    rng = np.random.default_rng(1)
    ref = {"a": rng.normal(size=1000), "color": np.asarray(["red"] * 600 + ["blue"] * 400, dtype=object),
           "y": rng.integers(0, 2, 1000).astype(float)}
    profile = build_profile(ref, label="y")
    assert [f.name for f in profile.features] == ["a", "color"]
    a, color = profile.features
    assert a.kind == "numeric" and len(a.edges) == 9 and sum(a.ref) == 1000
    assert max(a.ref[:10]) - min(a.ref[:10]) <= 2  # deciles
    slots = bin_feature(a, np.asarray([np.nan, "12 cm", -1e9, 1e9, None], dtype=object))
    assert slots.tolist() == [MISSING, UNSEEN, 0, 9, MISSING]
    assert bin_feature(color, np.asarray(["red", "blue", "green", None], dtype=object)).tolist() == [0, 1, UNSEEN, MISSING]


def test_fold_counts_match_a_plain_count_and_units_count_each_key_once_per_pane():
    rng = np.random.default_rng(2)
    ref = {"a": rng.normal(size=500), "b": rng.normal(size=500)}
    profile = build_profile(ref)
    n = 3000
    t = 1_800_000_000 + np.sort(rng.uniform(0, 600, n))
    versions = np.asarray(rng.choice(["1", "2"], n), dtype=object)
    keys = np.asarray([f"u{k}" for k in rng.integers(0, 40, n)], dtype=object)
    ids = np.asarray([f"r{i}" for i in range(n)], dtype=object)
    feats = {"a": rng.normal(size=n)}  # b absent: missing
    pred = rng.uniform(size=n)
    panes = fold(profile, t, versions, keys, ids, feats, pred)
    layout = Layout(2)
    for (version, minute), vector in panes.items():
        mask = (versions == version) & (np.floor(t / 60) == minute)
        assert vector[0] == mask.sum()
        assert vector[1] == len(set(keys[mask]))
        counts = layout.feature_counts(vector, units=False)
        expected = np.bincount(bin_feature(profile.features[0], feats["a"][mask]), minlength=WIDTH)
        assert counts[0].tolist() == expected.tolist()
        assert counts[1][MISSING] == mask.sum()
        assert layout.prediction_counts(vector, units=False).sum() == mask.sum()
        assert layout.feature_counts(vector)[0].sum() == vector[1]
    # folding in two halves and merging gives the same panes (panes merge by addition);
    # keys split across the halves count as a unit in each half, so compare records only
    half = n // 2
    merged = fold(profile, t[:half], versions[:half], keys[:half], ids[:half], {"a": feats["a"][:half]}, pred[:half])
    merge(merged, fold(profile, t[half:], versions[half:], keys[half:], ids[half:], {"a": feats["a"][half:]},
                       pred[half:]), layout)
    assert sorted(merged) == sorted(panes)
    for key in panes:
        assert (layout.feature_counts(merged[key], units=False) == layout.feature_counts(panes[key], units=False)).all()


def test_window_statistics_see_a_shift_and_not_noise():
    rng = np.random.default_rng(3)
    profile = build_profile({"a": rng.normal(size=20_000)})
    fb = profile.features[0]
    same = np.bincount(bin_feature(fb, rng.normal(size=5000)), minlength=WIDTH)
    moved = np.bincount(bin_feature(fb, rng.normal(0.6, 1, size=5000)), minlength=WIDTH)
    cfg = MonitorConfig()
    quiet = compare("a", np.asarray(fb.ref), same, value_bins=10, missing=MISSING, unseen=UNSEEN, cfg=cfg, alarmed=True)
    loud = compare("a", np.asarray(fb.ref), moved, value_bins=10, missing=MISSING, unseen=UNSEEN, cfg=cfg, alarmed=True)
    assert quiet.tier == "ok" and quiet.psi < 0.01 and quiet.p_value > 1e-3
    assert loud.tier == "critical" and loud.psi > 0.3 and loud.p_value < 1e-6 and loud.ks > 0.2
    # without the detector's alarm no tier, whatever the size
    calm = compare("a", np.asarray(fb.ref), moved, value_bins=10, missing=MISSING, unseen=UNSEEN, cfg=cfg, alarmed=False)
    assert calm.tier == "ok" and calm.psi == loud.psi
    assert psi(np.asarray([10, 0, 0]), np.asarray([10, 0, 0])) == 0.0


def test_records_read_through_a_mapping_bad_ones_counted_never_raised():
    mapping = FieldMapping(features="req.x", prediction="out.p", id="rid", label="y", key="user", time="ts")
    records = [
        {"ts": 10.0, "rid": "a", "user": "u1", "req": {"x": {"f": 1.0, "g": "red"}}, "out": {"p": [0.2, 0.8]}},
        {"ts": 11.0, "rid": "b", "req": {"x": {"f": None}}, "out": {"p": 0.1}, "y": 1},
        {"ts": "soon", "rid": "c", "req": {"x": {"f": 1.0}}},
        {"ts": 12.0, "req": {"x": {"f": 1.0}}},
        {"ts": 13.0, "rid": "d", "y": 0},  # a label event
        {"ts": 14.0, "rid": "e"},  # neither
        "not an object",
    ]
    batch = batch_from_records(records, mapping, "kafka topic t")
    assert batch.ids.tolist() == ["a", "b"]
    assert batch.prediction.tolist() == [0.8, 0.1]
    assert batch.features["g"].tolist()[0] == "red"
    assert np.isnan(batch.features["f"][1])
    assert batch.labels == [("b", 1, 11.0), ("d", 0, 13.0)]
    assert batch.bad == {"kafka topic t: ts: missing or not a number": 1, "kafka topic t: rid: missing": 1,
                         "kafka topic t: req.x: missing": 1, "kafka topic t: record: not a JSON object": 1}


def test_json_lines_fast_and_plain_paths_agree():
    lines = b"".join([
        b'{"t":1.5,"id":"a","v":"1","k":"h1","x":{"f":1.0,"g":2},"p":0.7,"status":200}\n',
        b'{"type":"label","t":2.0,"id":"a","label":1}\n',
        b'{"t":3.5,"id":"b","v":"1","k":"h2","x":{"f":null,"g":3},"p":0.2,"status":200}\n',
    ])
    fast = batch_from_json_lines(lines, FieldMapping(), "router")
    mixed = batch_from_json_lines(lines + b'{"t":4.0,"id":"c","v":"1","x":{"f":"12 cm","g":1},"p":0.5}\n{torn\n',
                                  FieldMapping(), "router")
    assert fast.ids.tolist() == ["a", "b"] and fast.labels == [("a", 1, 2.0)]
    assert fast.features["g"].tolist() == [2.0, 3.0] and np.isnan(fast.features["f"][1])
    assert mixed.ids.tolist() == ["a", "b", "c"] and mixed.features["f"][2] == "12 cm"
    assert mixed.labels == [("a", 1, 2.0)] and mixed.bad == {"router: record: not JSON": 1}


def test_many_features_at_once_give_each_feature_s_own_numbers():
    from console.monitor.decide import compare_many

    rng = np.random.default_rng(8)
    ref = rng.integers(0, 200, size=(6, WIDTH)).astype(float)
    ref[:, MISSING] = 0
    cur = rng.integers(0, 200, size=(6, WIDTH)).astype(float)
    cur[2] = 0  # a feature with no traffic
    cfg = MonitorConfig()
    many = compare_many([f"f{i}" for i in range(6)], ref, cur, [10] * 6, missing=MISSING, unseen=UNSEEN, cfg=cfg,
                        alarmed=True, distinct=300.0)
    for i, v in enumerate(many):
        one = compare(f"f{i}", ref[i], cur[i], value_bins=10, missing=MISSING, unseen=UNSEEN, cfg=cfg, alarmed=True,
                      distinct=300.0)
        for field in ("tier", "psi", "psi_debiased", "kl", "ks", "ks_p_value", "p_value", "missing_rate", "unseen_share"):
            a, b = getattr(v, field), getattr(one, field)
            assert (a == b) if not isinstance(a, float) else abs(a - b) < 1e-9, (i, field, a, b)
