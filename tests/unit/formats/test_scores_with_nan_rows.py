"""Turning model outputs into scores: one NaN row must not change how the other rows are read."""

from __future__ import annotations

import numpy as np

from backends.formats._scores import to_scores


def test_a_nan_row_does_not_turn_probability_columns_into_logits():
    probabilities = np.array([[0.2, 0.8], [np.nan, np.nan], [0.9, 0.1]])
    scores = to_scores(probabilities, {}, "model.onnx")
    assert np.allclose(scores[[0, 2]], [0.8, 0.1]) and np.isnan(scores[1])


def test_a_nan_row_does_not_turn_probabilities_into_logits():
    scores = to_scores(np.array([0.3, np.nan, 0.7]), {}, "model.pt")
    assert np.allclose(scores[[0, 2]], [0.3, 0.7]) and np.isnan(scores[1])


def test_logits_are_still_read_as_logits_beside_a_nan_row():
    scores = to_scores(np.array([-2.0, np.nan, 3.0]), {}, "model.pt")
    assert np.allclose(scores[[0, 2]], 1 / (1 + np.exp(-np.array([-2.0, 3.0]))))
