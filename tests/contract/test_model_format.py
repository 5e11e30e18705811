"""One contract for every model format (backends.base.ModelFormat), each on one artifact built
here by the plain library (torch, skl2onnx, MLflow's sklearn flavour): what a new format must do
to be sniffed, loaded, scored and served like the built-in ones.

The format-specific details (traced vs scripted graphs, ZipMap, signatures, pickles refused
unless trusted …) are tested in tests/integration/formats/; this file holds what every format shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from backends.base import BadInputError
from console.plugins import BUILTIN_FORMATS, SNIFF_ORDER, model_format

ROWS, FEATURES = 120, 6
COLUMNS = [f"f{i}" for i in range(FEATURES)]


@dataclass
class Built:
    path: Path
    options: dict[str, Any]
    expected: np.ndarray  # P(y = 1) as the plain library computes it
    broken: Callable[[Path], Path]  # writes a damaged copy under the folder, returns its path


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=ROWS, n_features=FEATURES, n_informative=4, random_state=0)
    return X.astype(np.float64), y


def _net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, 1)).eval()


def _sigmoid_of(net, X) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor(X, dtype=torch.float32))).squeeze(-1).numpy().astype(np.float64)


def _cut(path: Path, folder: Path) -> Path:
    out = folder / f"cut-{path.name}"
    out.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    return out


def _torch_mlp(data, folder: Path) -> Built:
    import torch
    from torch import nn

    X, _ = data
    torch.manual_seed(3)
    mean, std = torch.tensor(X.mean(axis=0), dtype=torch.float32), torch.tensor(X.std(axis=0), dtype=torch.float32)
    net = nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 1))
    state = {"mean": mean, "std": std, **{f"net.{k}": v for k, v in net.state_dict().items()}}
    arch = {"n_features": FEATURES, "hidden": 8, "layers": 1, "dropout": 0.0, "features": COLUMNS, "label": "y"}
    path = folder / "mlp.pt"
    torch.save({"format": "torch-mlp-v1", "arch": arch, "state_dict": state}, str(path))
    with torch.no_grad():
        expected = torch.sigmoid(net((torch.tensor(X, dtype=torch.float32) - mean) / std)).squeeze(-1).numpy()
    return Built(path, {}, expected.astype(np.float64), lambda f: _cut(path, f))


def _torchscript(data, folder: Path) -> Built:
    import torch

    net = _net()
    path = folder / "script.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    return Built(path, {}, _sigmoid_of(net, data[0]), lambda f: _cut(path, f))


def _onnx(data, folder: Path) -> Built:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = data
    clf = LogisticRegression(max_iter=500).fit(X, y)
    path = folder / "model.onnx"
    path.write_bytes(to_onnx(clf, X[:1].astype(np.float32), target_opset=17).SerializeToString())
    return Built(path, {}, clf.predict_proba(X)[:, 1], lambda f: _cut(path, f))


def _mlflow_pyfunc(data, folder: Path) -> Built:
    import mlflow.sklearn  # ~2 s
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    X, y = data
    clf = LogisticRegression(max_iter=500).fit(X, y)
    frame = pd.DataFrame(X, columns=COLUMNS)
    path = folder / "pyfunc"
    mlflow.sklearn.save_model(clf, str(path), signature=infer_signature(frame, clf.predict(X)),
                              pip_requirements=["scikit-learn"])

    def broken(f: Path) -> Path:  # the serialised model inside (model.skops or model.pkl) cut short
        import shutil

        out = f / "cut-pyfunc"
        shutil.copytree(path, out)
        (stored,) = [p for p in out.iterdir() if p.name.startswith("model.")]
        stored.write_bytes(stored.read_bytes()[:40])
        return out

    return Built(path, {}, clf.predict_proba(X)[:, 1], broken)


def _torch_pickle(data, folder: Path) -> Built:
    import torch

    net = _net()
    path = folder / "pickled.pt"
    torch.save(net, str(path))
    return Built(path, {"trust_pickle": True}, _sigmoid_of(net, data[0]), lambda f: _cut(path, f))


BUILDERS = {"torch-mlp-v1": _torch_mlp, "torchscript": _torchscript, "onnx": _onnx,
            "mlflow-pyfunc": _mlflow_pyfunc, "torch-pickle": _torch_pickle}


def test_every_builtin_format_is_under_contract():
    assert set(BUILDERS) == set(BUILTIN_FORMATS) == set(SNIFF_ORDER)


@pytest.fixture(scope="module")
def artifacts(data, tmp_path_factory) -> dict[str, Built]:
    folder = tmp_path_factory.mktemp("formats")
    return {name: build(data, folder) for name, build in BUILDERS.items()}


@pytest.fixture(params=sorted(BUILDERS))
def case(request, artifacts):
    name = request.param
    return name, model_format(name), artifacts[name]


def test_declares_its_name_and_how_it_is_served(case):
    name, fmt, _ = case
    assert fmt.name == name
    assert fmt.serve_protocol in ("mrc", "mlflow-invocations")
    for method in ("sniff", "load", "serve_argv"):
        assert callable(getattr(fmt, method)), f"{name}: ModelFormat.{method}"


def test_its_artifact_is_claimed_by_it_alone(case, artifacts):
    name, fmt, built = case
    claims = [other for other in SNIFF_ORDER if model_format(other).sniff(str(built.path))]
    assert claims == [name]
    others = [b.path for n, b in artifacts.items() if n != name]
    assert not [p for p in others if fmt.sniff(str(p))], f"{name} claims another format's artifact"


def test_loads_and_scores_as_the_plain_library(case, data):
    name, fmt, built = case
    X, _ = data
    loaded = fmt.load(str(built.path), built.options)
    assert loaded.features is None or loaded.features == COLUMNS
    scores = loaded.predict(X, COLUMNS)
    assert isinstance(scores, np.ndarray) and scores.shape == (ROWS,) and scores.dtype.kind == "f"
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, built.expected, rtol=1e-4, atol=1e-5)
    if loaded.features is not None:  # it picks its columns by name: any order in, same scores out
        np.testing.assert_allclose(loaded.predict(X[:, ::-1], COLUMNS[::-1]), built.expected, rtol=1e-4, atol=1e-5)


def test_serve_argv_is_none_for_mrcs_own_server_or_a_command_line(case):
    name, fmt, built = case
    argv = fmt.serve_argv(str(built.path), "127.0.0.1", 5099, built.options)
    if fmt.serve_protocol == "mrc":
        assert argv is None, f"{name}: served by mrc's own model server"
    else:
        assert argv is None or (isinstance(argv, list) and all(isinstance(a, str) for a in argv)
                                and "5099" in argv and "127.0.0.1" in argv)


def test_a_damaged_artifact_fails_with_one_line_naming_it(case, tmp_path):
    name, fmt, built = case
    damaged = built.broken(tmp_path)
    with pytest.raises(BadInputError) as refused:
        fmt.load(str(damaged), built.options).predict(np.zeros((2, FEATURES)), COLUMNS)
    message = str(refused.value)
    assert "\n" not in message and str(damaged) in message, message
