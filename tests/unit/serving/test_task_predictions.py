"""The router passes a task's predictions as they are; the shadow compares them per task."""

from __future__ import annotations

import pytest

from backends.local.serving.router import predictions_from_mlflow
from console.rollout.shadow import compare


def test_router_passes_class_probability_vectors_and_labels():
    reply = {"predictions": [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]]}
    assert predictions_from_mlflow(reply, "multiclass") == [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]]
    with pytest.raises(ValueError, match='task = "multiclass"'):  # a binary model answering 3 columns is broken
        predictions_from_mlflow(reply, "binary")
    assert predictions_from_mlflow({"predictions": ["fraud", "tech"]}, "multiclass") == ["fraud", "tech"]
    # a DataFrame answer in "columns" orient: one probability column per class
    frame = {"predictions": {"a": {"0": 0.1, "1": 0.6}, "b": {"0": 0.9, "1": 0.4}}}
    assert predictions_from_mlflow(frame, "multiclass") == [[0.1, 0.9], [0.6, 0.4]]
    assert predictions_from_mlflow({"predictions": [[0.3, 0.7]]}, "binary") == [0.7]  # binary pairs as before
    assert predictions_from_mlflow({"predictions": [12.5, -3.0]}, "regression") == [12.5, -3.0]


def _records(pairs):
    return [{"type": "shadow", "t": float(i), "v": "1", "sv": "2", "status": 200, "sstatus": 200,
             "p": [p], "sp": [s], "ms": 1.0, "sms": 1.0} for i, (p, s) in enumerate(pairs)]


def test_shadow_agreement_for_classes_is_the_same_predicted_class():
    same = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]]
    other = [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]
    pairs = [(same[0], same[1])] * 40 + [(other[0], other[1])] * 10
    c = compare(_records(pairs), task="multiclass", min_pairs=30)
    assert c.rows == 50 and c.agreement == pytest.approx(0.8)
    assert c.diff_max_abs == pytest.approx(0.7)  # total-variation distance of the disagreeing pair
    labels = compare(_records([("fraud", "fraud")] * 45 + [("fraud", "tech")] * 5), task="multiclass", min_pairs=30)
    assert labels.agreement == pytest.approx(0.9) and labels.psi is not None and labels.psi > 0


def test_shadow_of_a_regression_agrees_within_tolerance():
    c = compare(_records([(10.0, 10.05)] * 30 + [(10.0, 12.0)] * 10), task="regression", tolerance=0.1, min_pairs=30)
    assert c.agreement == pytest.approx(0.75)
