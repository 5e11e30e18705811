"""Regression and multi-class metrics against scikit-learn's own functions on the same arrays."""

from __future__ import annotations


import numpy as np
import pytest
from sklearn import metrics as skm

from backends.base import BadInputError
from backends.formats._scores import class_probabilities
from console.evaluate import multiclass, regression
from console.evaluate.tasks import check_task, task_from_metric_names, task_from_output, with_seed_names


def _regression_arrays(seed: int, n: int = 500):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(3, 1, n) * rng.choice([-1, 1], n)
    y[:3] = 0.0  # MAPE's floor of |y|
    return y, y + rng.normal(0, 5, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_equal_sklearns(seed):
    y, p = _regression_arrays(seed)
    got = regression.regression_metrics(y, p)
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-12)
    assert got["max_residual"] == pytest.approx(skm.max_error(y, p), rel=1e-12)
    assert got["median_absolute_error"] == pytest.approx(skm.median_absolute_error(y, p), rel=1e-12)


def test_r2_of_a_constant_truth_is_sklearns_finite_value():
    y = np.full(10, 3.0)
    assert regression.regression_metrics(y, y)["r2"] == skm.r2_score(y, y) == 1.0
    assert regression.regression_metrics(y, y + 1)["r2"] == skm.r2_score(y, y + 1) == 0.0


def _multiclass_arrays(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 2.0 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_equal_sklearns(seed):
    y, proba = _multiclass_arrays(seed)
    pred = proba.argmax(axis=1)
    pred[:5] = 4  # a class no row truly has: the union of labels, as scikit-learn's unique_labels
    enc = multiclass.encode(y, pred)
    got = multiclass.multiclass_metrics(enc.y, enc.predictions[0], enc.names)
    assert enc.names == ["0", "1", "2", "3", "4"]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert got[f"{avg}_f1"] == pytest.approx(skm.f1_score(y, pred, average=avg, zero_division=0))
        assert got[f"{avg}_precision"] == pytest.approx(skm.precision_score(y, pred, average=avg, zero_division=0))
        assert got[f"{avg}_recall"] == pytest.approx(skm.recall_score(y, pred, average=avg, zero_division=0))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    per_class = skm.recall_score(y, pred, average=None, zero_division=0)
    for c, r in zip(range(5), per_class):
        assert got[f"recall_class_{c}"] == pytest.approx(r)
    assert got["min_class_recall"] == pytest.approx(per_class[:4].min())
    np.testing.assert_array_equal(multiclass.confusion_matrix(enc.y, enc.predictions[0], 5),
                                  skm.confusion_matrix(y, pred))


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_log_loss_equals_sklearns(seed):
    y, proba = _multiclass_arrays(seed)
    proba[0] = [1.0, 0.0, 0.0, 0.0]  # a certain, maybe wrong, row: the clip decides
    enc = multiclass.encode(y, proba.argmax(axis=1))
    assert multiclass.log_loss(enc.y, proba) == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]), rel=1e-9)


def test_text_labels_and_logits():
    y = np.array(["cat", "dog", "eel", "dog"], dtype=object)
    pred = np.array(["cat", "eel", "eel", "dog"], dtype=object)
    enc = multiclass.encode(y, pred)
    got = multiclass.multiclass_metrics(enc.y, enc.predictions[0], enc.names)
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["recall_class_dog"] == pytest.approx(0.5)
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    p = class_probabilities(logits)
    assert p.sum(axis=1) == pytest.approx([1.0, 1.0]) and p[1, 0] == pytest.approx(1 / 3)
    already = np.array([[0.2, 0.3, 0.5]])
    assert class_probabilities(already)[0, 2] == 0.5  # already probabilities: kept as they are


def test_numbers_against_text_is_one_line():
    with pytest.raises(BadInputError, match="score_candidate: predicted classes are texts"):
        multiclass.encode(np.array([0, 1]), np.array(["a", "b"], dtype=object), source="f.csv",
                          columns=("y_true", "score_candidate"))


def test_paired_error_test_matches_a_paired_t_and_the_mae_difference():
    from scipy import stats as sps

    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 200)
    c, b = y + rng.normal(0, 0.5, 200), y + rng.normal(0, 0.6, 200)
    got = regression.paired_error_test("mae", y, c, b, alpha=0.05)
    assert got["improvement"] == pytest.approx(skm.mean_absolute_error(y, b) - skm.mean_absolute_error(y, c))
    d = np.abs(b - y) - np.abs(c - y)
    lo, hi = sps.t.interval(0.95, d.size - 1, loc=d.mean(), scale=sps.sem(d))
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    sq = regression.paired_error_test("rmse", y, c, b)
    assert sq["improvement"] == pytest.approx(skm.mean_squared_error(y, b) - skm.mean_squared_error(y, c))


def test_mcnemar_on_correctness_counts_discordant_rows():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    c = np.array([0, 1, 2, 0, 1, 2, 1, 1])  # wrong on row 6
    b = np.array([0, 1, 0, 1, 1, 2, 0, 0])  # wrong on rows 2, 3, 7
    cfg = {"alpha": 0.05, "margin": 0.01, "require": "not_worse", "n_boot": 200, "seed": 0}
    check, = multiclass.mcnemar_checks(cfg, y, c, b)
    assert (check.extra["b"], check.extra["c"]) == (3, 1)  # only-candidate-right, only-baseline-right
    assert check.value == pytest.approx(skm.accuracy_score(y, c) - skm.accuracy_score(y, b))


def test_mlflow_evaluate_names_map_onto_the_seeds():
    recorded = {"root_mean_squared_error": 3.0, "r2_score": 0.9, "mean_absolute_error": 2.0, "max_error": 7.0,
                "mean_absolute_percentage_error": 0.1, "training_r2_score": 0.99}
    got = with_seed_names(recorded, "regression")
    assert (got["rmse"], got["r2"], got["mae"], got["max_residual"], got["mape"]) == (3.0, 0.9, 2.0, 7.0, 0.1)
    assert "training_r2" not in got and got["training_r2_score"] == 0.99
    assert with_seed_names({"mean_squared_error": 4.0}, "regression")["rmse"] == 2.0
    assert with_seed_names({"f1_score": 0.8, "accuracy_score": 0.9}, "multiclass")["weighted_f1"] == 0.8
    assert with_seed_names({"f1_score": 0.8}, "binary")["f1"] == 0.8
    assert with_seed_names({"f1": 0.5, "f1_score": 0.8}, "binary")["f1"] == 0.5  # never overwritten


def test_task_names_and_guesses():
    assert check_task("Regressor", "x") == "regression" and check_task("multi-class", "x") == "multiclass"
    with pytest.raises(BadInputError, match="mrc.toml: models.m.task: unknown task 'ranking'"):
        check_task("ranking", "mrc.toml: models.m.task")
    assert task_from_metric_names(["r2_score", "mean_absolute_error"]) == "regression"
    assert task_from_metric_names(["accuracy_score", "f1_score"]) is None
    assert task_from_output((10, 3)) == "multiclass" and task_from_output((10, 2)) == "binary"
    assert task_from_output((10,), integral=False) == "regression" and task_from_output((10,), integral=True) is None


class _Answers:
    """A loaded model that says nothing of its task (a PythonModel): only its answers."""

    features = None
    classes = None
    task = None

    def __init__(self, out):
        self.out = np.asarray(out)

    def predict_task(self, frame):
        return self.out


def test_a_model_that_does_not_say_is_read_from_its_answers_or_asked():
    from console.evaluate.task_gates import task_of_model

    head = None
    assert task_of_model(_Answers([[0.2, 0.5, 0.3]]), head, "m", "1", "mrc.toml") == "multiclass"
    assert task_of_model(_Answers([0.2, 0.9, 0.4]), head, "m", "1", "mrc.toml") == "binary"  # scores, as before
    with pytest.raises(BadInputError, match=r'mrc.toml: models.m.task: cannot tell the task .* set task = '):
        task_of_model(_Answers([3.0, 0.0, 7.0, 1.0]), head, "m", "1", "mrc.toml")  # classes or counts?
    said = _Answers([1.5])
    said.task = "regression"
    assert task_of_model(said, head, "m", "1", "mrc.toml") == "regression"
