"""Each format against the plain library's own predictions: build the artifact with sklearn /
torch / skl2onnx / torch.onnx / MLflow, then resolve_format + load + predict through the seam."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from backends.base import BadInputError
from console.plugins import SNIFF_ORDER, model_format, resolve_format
from tests.support.formats import torch_probabilities


def _scores(path, X, columns, options=None, declared=None):
    fmt = resolve_format(declared, str(path), options or {}, model="m")
    loaded = fmt.load(str(path), options or {})
    return fmt, loaded, loaded.predict(X, columns)


def _plain_net(n_features):
    """A net that torch.save can pickle (nn classes only), trained by nothing: weights are random."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, 1)).eval()


# -- TorchScript ----------------------------------------------------------------------------------

def test_torchscript_scripted_and_traced_match_torch(cancer, torch_net, tmp_path):
    import torch

    X, _, columns, _ = cancer
    expected = torch_probabilities(torch_net, X)
    torch.jit.save(torch.jit.script(torch_net), str(tmp_path / "scripted.pt"))
    torch.jit.save(torch.jit.trace(torch_net, torch.zeros(2, X.shape[1])), str(tmp_path / "traced.pt"))
    for name in ("scripted.pt", "traced.pt"):
        fmt, loaded, scores = _scores(tmp_path / name, X, columns)
        assert fmt.name == "torchscript" and fmt.serve_protocol == "mrc"
        assert fmt.serve_argv(str(tmp_path / name), "127.0.0.1", 1, {}) is None
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        assert loaded.features is None  # nothing in the file names the columns
    # one row at a time scores like the batch: logits are known from the graph, not guessed per batch
    _, loaded, _ = _scores(tmp_path / "scripted.pt", X[:1], columns)
    small = np.array([loaded.predict(X[i:i + 1], columns)[0] for i in range(20)])
    np.testing.assert_allclose(small, expected[:20], rtol=1e-5, atol=1e-6)


def test_torchscript_features_from_extra_files_reorder_the_columns(cancer, torch_net, tmp_path):
    import torch

    X, _, columns, _ = cancer
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch_net), str(path), _extra_files={"features.json": json.dumps(columns)})
    _, loaded, _ = _scores(path, X[:2], columns)
    assert loaded.features == columns
    reversed_scores = loaded.predict(X[:, ::-1], columns[::-1])  # the data's column order is not the model's
    np.testing.assert_allclose(reversed_scores, torch_probabilities(torch_net, X), rtol=1e-5, atol=1e-6)
    with pytest.raises(BadInputError, match="no column 'mean radius'"):
        loaded.predict(X[:, 1:], columns[1:])


def test_torchscript_with_a_sigmoid_is_not_squashed_twice_and_regression_keeps_values(cancer, torch_net, tmp_path):
    import torch
    from torch import nn

    X, _, columns, _ = cancer
    with_sigmoid = nn.Sequential(torch_net, nn.Sigmoid()).eval()
    torch.jit.save(torch.jit.script(with_sigmoid), str(tmp_path / "prob.pt"))
    _, _, scores = _scores(tmp_path / "prob.pt", X, columns)
    np.testing.assert_allclose(scores, torch_probabilities(torch_net, X), rtol=1e-5, atol=1e-6)
    torch.jit.save(torch.jit.script(torch_net), str(tmp_path / "reg.pt"))
    _, _, values = _scores(tmp_path / "reg.pt", X, columns, {"task": "regression"})
    with torch.no_grad():
        raw = torch_net(torch.tensor(X, dtype=torch.float32)).squeeze(-1).numpy()
    np.testing.assert_allclose(values, raw, rtol=1e-5, atol=1e-6)


def test_two_column_softmax_output_gives_p_of_class_one(cancer, tmp_path):
    import torch
    from torch import nn

    X, _, columns, _ = cancer
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(X.shape[1], 2)).eval()
    torch.jit.save(torch.jit.script(net), str(tmp_path / "two.pt"))
    _, _, scores = _scores(tmp_path / "two.pt", X / 1000.0, columns)
    with torch.no_grad():
        expected = torch.softmax(net(torch.tensor(X / 1000.0, dtype=torch.float32)), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


# -- ONNX -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_from_skl2onnx_matches_predict_proba(cancer, tmp_path, zipmap):
    from skl2onnx import to_onnx

    X, _, columns, clf = cancer
    onx = to_onnx(clf, X[:1].astype(np.float32), options={"zipmap": zipmap}, target_opset=17)
    path = tmp_path / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "onnx"
    np.testing.assert_allclose(scores, clf.predict_proba(X)[:, 1], rtol=1e-4, atol=1e-5)


def test_onnx_with_one_input_per_column_takes_its_features_from_the_inputs(cancer, tmp_path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _, _ = cancer
    names = ["radius", "texture", "perimeter", "area"]
    import pandas as pd

    frame = pd.DataFrame(X[:, :4], columns=names)
    pipe = Pipeline([("prep", ColumnTransformer([("scale", StandardScaler(), names)])),
                     ("clf", LogisticRegression(max_iter=2000))]).fit(frame, y)
    onx = convert_sklearn(pipe, initial_types=[(n, FloatTensorType([None, 1])) for n in names],
                          options={id(pipe): {"zipmap": False}}, target_opset=17)
    path = tmp_path / "columns.onnx"
    path.write_bytes(onx.SerializeToString())
    _, loaded, _ = _scores(path, X[:1, :4], names)
    assert loaded.features == names
    shuffled = ["area", "radius", "perimeter", "texture", "extra"]
    rows = np.column_stack([frame[c] for c in shuffled[:4]] + [np.zeros(len(frame))])
    np.testing.assert_allclose(loaded.predict(rows, shuffled), pipe.predict_proba(frame)[:, 1], rtol=1e-4, atol=1e-5)


def test_onnx_from_torch_export_matches_torch(cancer, torch_net, tmp_path):
    import torch

    X, _, columns, _ = cancer
    path = tmp_path / "torch.onnx"
    torch.onnx.export(torch_net, torch.zeros(2, X.shape[1]), str(path), input_names=["x"], output_names=["logit"],
                      dynamic_axes={"x": {0: "n"}, "logit": {0: "n"}}, dynamo=False)
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "onnx" and loaded.features is None
    np.testing.assert_allclose(scores, torch_probabilities(torch_net, X), rtol=1e-4, atol=1e-5)
    one = loaded.predict(X[:1], columns)  # a single row is still a logit, not a probability
    np.testing.assert_allclose(one, torch_probabilities(torch_net, X[:1]), rtol=1e-4, atol=1e-5)


# -- MLflow ---------------------------------------------------------------------------------------

def test_mlflow_sklearn_model_scores_with_predict_proba(cancer, tmp_path):
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    X, _, columns, clf = cancer
    frame = pd.DataFrame(X, columns=columns)
    path = tmp_path / "sk"
    mlflow.sklearn.save_model(clf, str(path), signature=infer_signature(frame, clf.predict(X)),
                              pip_requirements=["scikit-learn"])
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "mlflow-pyfunc" and fmt.serve_protocol == "mlflow-invocations"
    assert loaded.features == columns  # from the signature
    np.testing.assert_allclose(scores, clf.predict_proba(X)[:, 1], rtol=1e-9)
    np.testing.assert_allclose(loaded.predict(X[:, ::-1], columns[::-1]), clf.predict_proba(X)[:, 1], rtol=1e-9)


def test_mlflow_sklearn_model_without_signature_takes_the_names_it_was_fitted_on(cancer, tmp_path):
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X, y, columns, _ = cancer
    frame = pd.DataFrame(X[:, :5], columns=columns[:5])
    clf = LogisticRegression(max_iter=5000).fit(frame, y)
    path = tmp_path / "nosig"
    mlflow.sklearn.save_model(clf, str(path), pip_requirements=["scikit-learn"])
    _, loaded, _ = _scores(path, X[:1, :5], columns[:5])
    assert loaded.features == columns[:5]
    with_label = np.column_stack([y, X])  # every column of a test file, the label first
    scores = loaded.predict(with_label, ["target", *columns])
    np.testing.assert_allclose(scores, clf.predict_proba(frame)[:, 1], rtol=1e-9)


def test_mlflow_serve_argv_starts_the_scoring_server_and_writes_nothing_in_its_cwd(cancer, tmp_path):
    """The argv runs as given (no activated venv, no MLFLOW_* in the environment) and answers
    /invocations with what the model's pyfunc predicts (here predict_proba, as it was logged)."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    import mlflow.sklearn

    X, _, columns, clf = cancer
    path = tmp_path / "sk"
    mlflow.sklearn.save_model(clf, str(path), pip_requirements=["scikit-learn"], pyfunc_predict_fn="predict_proba")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = model_format("mlflow-pyfunc").serve_argv(str(path), "127.0.0.1", port, {})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # generous: a loaded 2-core machine
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the MLflow scoring server did not answer /ping"
                time.sleep(0.5)
        body = json.dumps({"dataframe_split": {"columns": list(range(X.shape[1])), "data": X[:20].tolist()}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        np.testing.assert_allclose(np.asarray(answer["predictions"]), clf.predict_proba(X[:20]), rtol=1e-9)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    assert sorted(os.listdir(cwd)) == []


def test_mlflow_serve_argv_leaves_a_labelling_sklearn_classifier_to_mrcs_server(cancer, tmp_path):
    """A plain mlflow.sklearn model's pyfunc answers predict()'s labels while the gates score
    predict_proba: no MLflow command (None = mrc's own server), unless it is a regression or
    was logged to answer predict_proba."""
    import mlflow.sklearn

    X, y, columns, clf = cancer
    fmt = model_format("mlflow-pyfunc")
    for fn, options, served_by_mlflow in (("predict", {}, False), ("predict", {"task": "binary"}, False),
                                          ("predict_log_proba", {}, False), ("predict", {"task": "regression"}, True),
                                          ("predict_proba", {}, True)):
        path = tmp_path / f"sk-{fn}-{options.get('task', '')}"
        mlflow.sklearn.save_model(clf, str(path), pip_requirements=["scikit-learn"], pyfunc_predict_fn=fn)
        argv = fmt.serve_argv(str(path), "127.0.0.1", 1, options)
        assert (argv is not None) == served_by_mlflow, (fn, options)
        assert (fmt.serve_argv(str(path / "MLmodel"), "127.0.0.1", 1, options) is not None) == served_by_mlflow
    import mlflow.pyfunc

    class Half(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [0.5] * len(model_input)

    python_model = tmp_path / "pyfunc-only"
    mlflow.pyfunc.save_model(str(python_model), python_model=Half(), pip_requirements=["mlflow"])
    assert fmt.serve_argv(str(python_model), "127.0.0.1", 1, {})  # no sklearn flavor: MLflow serves it
    # declared logits: MLflow would answer them raw while the gates score their sigmoid
    assert fmt.serve_argv(str(python_model), "127.0.0.1", 1, {"output": "logits"}) is None


def test_mlflow_python_model_scores_through_pyfunc(cancer, tmp_path):
    import mlflow.pyfunc

    class Threshold(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return 1.0 / (1.0 + np.exp(model_input["mean radius"].to_numpy() - 14.0))

    X, _, columns, _ = cancer
    path = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(path), python_model=Threshold(), pip_requirements=["mlflow"])
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "mlflow-pyfunc" and loaded.features is None
    expected = Threshold().predict(None, __import__("pandas").DataFrame(X, columns=columns))
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_mlflow_pytorch_model_matches_torch(cancer, torch_net, tmp_path):
    import mlflow.pytorch

    X, _, columns, _ = cancer
    path = tmp_path / "pt"
    mlflow.pytorch.save_model(torch_net, str(path), input_example=X[:2].astype(np.float32),
                              pip_requirements=["torch"])
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "mlflow-pyfunc"
    np.testing.assert_allclose(scores, torch_probabilities(torch_net, X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(X[:1], columns), torch_probabilities(torch_net, X[:1]),
                               rtol=1e-5, atol=1e-6)
    assert not {"mlflow.db", "mlruns"} & set(os.listdir(os.getcwd()))


# -- mrc's own artifact, written by plain torch ----------------------------------------------------

def test_mrc_torch_mlp_artifact_written_by_plain_torch(cancer, tmp_path):
    import torch
    from torch import nn

    X, _, columns, _ = cancer
    torch.manual_seed(3)
    mean, std = torch.tensor(X.mean(axis=0), dtype=torch.float32), torch.tensor(X.std(axis=0), dtype=torch.float32)
    net = nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 1))
    state = {"mean": mean, "std": std, **{f"net.{k}": v for k, v in net.state_dict().items()}}
    arch = {"n_features": 30, "hidden": 8, "layers": 1, "dropout": 0.0, "features": columns, "label": "y"}
    path = tmp_path / "mlp.pt"
    torch.save({"format": "torch-mlp-v1", "arch": arch, "state_dict": state}, str(path))
    fmt, loaded, scores = _scores(path, X, columns)
    assert fmt.name == "torch-mlp-v1" and loaded.features == columns
    with torch.no_grad():
        expected = torch.sigmoid(net((torch.tensor(X, dtype=torch.float32) - mean) / std)).squeeze(-1).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


# -- pickles: refused unless trusted ----------------------------------------------------------------

def test_a_pickled_torch_module_is_refused_by_default_and_loads_when_trusted(cancer, tmp_path):
    import torch

    X, _, columns, _ = cancer
    net = _plain_net(X.shape[1])
    path = tmp_path / "pickled.pt"
    torch.save(net, str(path))
    fmt = resolve_format(None, str(path), {})
    assert fmt.name == "torch-pickle"
    with pytest.raises(BadInputError) as refused:
        fmt.load(str(path), {})
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{path}: a pickled torch model runs arbitrary code")
    assert "trust_pickle = true" in message
    with pytest.raises(BadInputError, match="arbitrary code"):
        fmt.load(str(path), {"trust_pickle": "yes"})  # only a real boolean true trusts
    with pytest.raises(BadInputError, match=r"^mrc.toml: models.m.trust_pickle: must be true or false$"):
        resolve_format(None, str(path), {"trust_pickle": "yes"}, model="m")
    loaded = fmt.load(str(path), {"trust_pickle": True})
    np.testing.assert_allclose(loaded.predict(X, columns), torch_probabilities(net, X), rtol=1e-5, atol=1e-6)


def test_a_state_dict_is_not_a_model_and_says_so(cancer, tmp_path):
    import torch

    path = tmp_path / "weights.pt"
    torch.save(_plain_net(30).state_dict(), str(path))
    fmt = resolve_format(None, str(path), {})
    with pytest.raises(BadInputError, match=r"weights\.pt: holds weights only"):
        fmt.load(str(path), {})


def test_the_refusal_does_not_run_the_pickle(tmp_path):
    """A malicious pickle in a torch zip: loading without trust must not execute it."""
    import pickle

    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"x": torch.zeros(1)}, str(path))
    with zipfile.ZipFile(path) as src:  # swap data.pkl for the malicious pickle, keep the torch layout
        entries = {name: src.read(name) for name in src.namelist()}
    data_pkl = next(n for n in entries if n.endswith("/data.pkl"))
    entries[data_pkl] = pickle.dumps(Evil(), protocol=2)
    with zipfile.ZipFile(path, "w") as dst:
        for name, body in entries.items():
            dst.writestr(name, body)
    fmt = resolve_format(None, str(path), {})
    assert fmt.name == "torch-pickle"
    with pytest.raises(BadInputError, match="arbitrary code"):
        fmt.load(str(path), {})
    assert not marker.exists()


def test_the_digest_of_a_model_folder_depends_on_its_names_and_bytes_only(cancer, tmp_path):
    import hashlib
    import shutil

    import mlflow.sklearn

    from console.plugins import artifact_sha256

    X, _, _, clf = cancer
    first = tmp_path / "first"
    mlflow.sklearn.save_model(clf, str(first), pip_requirements=["scikit-learn"])
    second = tmp_path / "elsewhere" / "copy"
    shutil.copytree(first, second)
    os.utime(second / "MLmodel", (1, 1))  # timestamps are not content
    digest, size = artifact_sha256(str(first))
    assert (digest, size) == artifact_sha256(str(second))
    assert size == sum(p.stat().st_size for p in first.rglob("*") if p.is_file())
    (second / "MLmodel").write_text((second / "MLmodel").read_text() + " ")
    assert artifact_sha256(str(second))[0] != digest
    shutil.rmtree(second)
    shutil.copytree(first, second)
    (second / "conda.yaml").rename(second / "conda2.yaml")
    assert artifact_sha256(str(second))[0] != digest
    single = first / "MLmodel"
    assert artifact_sha256(str(single)) == (hashlib.sha256(single.read_bytes()).hexdigest(), single.stat().st_size)


# -- sniffing and resolution -------------------------------------------------------------------------

def test_each_file_is_claimed_by_exactly_its_own_format(cancer, torch_net, tmp_path):
    import mlflow.sklearn
    import torch
    from skl2onnx import to_onnx

    X, _, _, clf = cancer
    torch.jit.save(torch.jit.script(torch_net), str(tmp_path / "script.pt"))
    (tmp_path / "model.onnx").write_bytes(to_onnx(clf, X[:1].astype(np.float32)).SerializeToString())
    mlflow.sklearn.save_model(clf, str(tmp_path / "mlflow"), pip_requirements=["scikit-learn"])
    torch.save(_plain_net(30), str(tmp_path / "pickle.pt"))
    torch.save({"format": "torch-mlp-v1", "arch": {"n_features": 1}, "state_dict": {}}, str(tmp_path / "mlp.pt"))
    expected = {"script.pt": "torchscript", "model.onnx": "onnx", "mlflow": "mlflow-pyfunc",
                "pickle.pt": "torch-pickle", "mlp.pt": "torch-mlp-v1"}
    formats = {name: model_format(name) for name in SNIFF_ORDER}
    for file, owner in expected.items():
        claims = [name for name, fmt in formats.items() if fmt.sniff(str(tmp_path / file))]
        assert claims == [owner], file
    assert [n for n, f in formats.items() if f.sniff(str(tmp_path / "mlflow" / "MLmodel"))] == ["mlflow-pyfunc"]


def test_resolution_order_mrc_toml_then_registry_then_bytes(cancer, torch_net, tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch_net), str(path))
    assert resolve_format(None, str(path), {}).name == "torchscript"
    assert resolve_format("jit", str(path), {}).name == "torchscript"  # registry alias
    assert resolve_format("pytorch", str(path), {}).name == "torchscript"  # unknown declaration: sniff
    assert resolve_format("onnx", str(path), {}).name == "torchscript"  # the bytes disagree with the registry
    assert resolve_format("onnx", str(path), {"format": "torch-pickle"}).name == "torch-pickle"  # mrc.toml wins
    with pytest.raises(BadInputError, match=r"models\.churn\.format: unknown model format 'keras'"):
        resolve_format(None, str(path), {"format": "keras"}, model="churn")
    # multiclass became a valid task with #22 (per-task gating), so an unknown task stands in
    for bad, field in (({"features": "a,b"}, "features"), ({"task": "ranking"}, "task"),
                       ({"output": "logit"}, "output")):
        with pytest.raises(BadInputError, match=rf"^mrc.toml: models.churn.{field}: must be"):
            resolve_format(None, str(path), bad, model="churn")


def test_unknown_and_broken_files_fail_with_one_line_naming_the_file(cancer, torch_net, tmp_path):
    import torch
    from skl2onnx import to_onnx

    X, _, columns, clf = cancer
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00not a model" * 10)
    with pytest.raises(BadInputError) as none:
        resolve_format(None, str(junk), {}, model="churn")
    assert str(none.value).startswith(f"{junk}: no known model format") and "[models.churn]" in str(none.value)
    # a TorchScript zip cut short, an ONNX protobuf cut short: sniffed, then refused by load
    torch.jit.save(torch.jit.script(torch_net), str(tmp_path / "full.pt"))
    (tmp_path / "cut.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:600])
    onnx_bytes = to_onnx(clf, X[:1].astype(np.float32)).SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    for name, fmt_name in (("cut.pt", "torchscript"), ("cut.onnx", "onnx")):
        path = tmp_path / name
        with pytest.raises(BadInputError) as broken:
            resolve_format(fmt_name, str(path), {}).load(str(path), {})
        assert str(broken.value).startswith(f"{path}: ") and "\n" not in str(broken.value)
    # a model asked for columns it was not built on
    torch.jit.save(torch.jit.script(torch_net), str(tmp_path / "ok.pt"))
    loaded = resolve_format(None, str(tmp_path / "ok.pt"), {}).load(str(tmp_path / "ok.pt"), {})
    with pytest.raises(BadInputError, match=r"ok\.pt: the TorchScript model refused a batch of shape \(3, 5\)"):
        loaded.predict(X[:3, :5], columns[:5])
