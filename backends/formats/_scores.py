"""Turn what a model returned into the 1-D float scores the gates and servers expect."""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import BadInputError


def task_of(options: dict[str, Any]) -> str:
    """The task under [models.X] (binary when left out): binary, regression or multiclass."""
    task = str(options.get("task") or "binary").lower()
    if task in ("regression", "regressor"):
        return "regression"
    if task in ("multiclass", "multi-class", "multi_class"):
        return "multiclass"
    return "binary"


def to_scores(raw: Any, options: dict[str, Any], where: str, output: str | None = None) -> np.ndarray:
    """Model output -> P(y=1) (binary) or values (regression).

    Two columns are (P(0), P(1)) or two logits: column 1, softmaxed when the rows are not
    already probabilities. One column in binary mode: probabilities as they are, logits
    through a sigmoid. Which one it is comes from `output = "logits"|"probabilities"` under
    [models.X], else from the model's last op (`output`, found once at load), else from the
    batch (anything outside [0, 1] is a logit) — the last guess only when nothing else says.
    """
    try:
        out = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInputError(f"{where}: the model returned {type(raw).__name__}, not numbers") from None
    if out.ndim == 0:
        out = out.reshape(1)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    task = task_of(options)
    declared = str(options.get("output") or output or "").lower()
    if out.ndim == 2 and out.shape[1] == 2 and task == "binary":
        finite = out[np.isfinite(out).all(axis=1)]  # a NaN row says nothing about the others
        is_prob = declared.startswith("prob") or (
            declared == "" and np.all((finite >= 0) & (finite <= 1)) and np.allclose(finite.sum(axis=1), 1.0, atol=1e-4))
        if is_prob:
            return out[:, 1]
        shifted = out - out.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp[:, 1] / exp.sum(axis=1)
    if out.ndim != 1:
        raise BadInputError(f"{where}: the model returned an output of shape {tuple(out.shape)}; "
                            "mrc needs one score per row (or two class columns)")
    if task == "regression":
        return out
    finite = out[np.isfinite(out)]
    if declared.startswith("logit") or (declared == "" and np.any((finite < 0) | (finite > 1))):
        return 1.0 / (1.0 + np.exp(-out))
    return out


def class_probabilities(raw: Any, output: str | None = None) -> np.ndarray:
    """(n, k) class scores as probabilities: rows already on the simplex stay as they are,
    anything else (logits) goes through a softmax. `output` ("logits"/"probabilities"), when
    the team or the model declared it, decides instead of the look of the batch."""
    out = np.asarray(raw, dtype=np.float64)
    declared = (output or "").lower()
    finite = out[np.isfinite(out).all(axis=1)]
    is_prob = declared.startswith("prob") or (
        declared == "" and finite.size > 0 and bool(np.all((finite >= 0) & (finite <= 1)))
        and bool(np.allclose(finite.sum(axis=1), 1.0, atol=1e-4)))
    if is_prob:
        return out
    shifted = out - out.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def ordered(rows: Any, columns: list[str], features: list[str] | None, where: str,
            dtype: str = "float32") -> np.ndarray:
    """rows as `dtype`, with columns reordered to `features` when the model names them."""
    data = np.asarray(rows, dtype=dtype)
    if data.ndim == 1:
        data = data.reshape(1, -1)
    if not features or list(columns) == list(features):
        return data
    missing = [f for f in features if f not in columns]
    if missing:
        raise BadInputError(f"{where}: the data has no column {missing[0]!r} the model needs "
                            f"({len(missing)} missing of {len(features)})")
    index = [list(columns).index(f) for f in features]
    return data[:, index]


_PASS_THROUGH = {"aten::squeeze", "aten::view", "aten::reshape", "aten::flatten", "aten::contiguous",
                 "aten::to", "aten::unsqueeze", "aten::select", "aten::slice", "prim::TupleConstruct",
                 "prim::ListConstruct", "aten::squeeze_", "aten::detach", "aten::clone"}
_PROBABILITY_OPS = {"aten::sigmoid", "aten::softmax", "aten::sigmoid_", "aten::_softmax"}
_LINEAR_OPS = {"aten::linear", "aten::addmm", "aten::matmul", "aten::mm", "aten::add", "aten::add_", "aten::sub",
               "aten::bmm", "aten::einsum"}


def torch_output_kind(module: Any) -> str | None:
    """"probabilities" when the module's output comes out of a sigmoid/softmax, "logits" when it
    comes out of a linear layer, None when the module does not say (another op, a custom forward)."""
    graph = getattr(module, "inlined_graph", None)
    if graph is not None:
        try:
            value = next(iter(graph.return_node().inputs()))
            for _ in range(16):
                node = value.node()
                kind = node.kind()
                if kind in _PROBABILITY_OPS:
                    return "probabilities"
                if kind in _LINEAR_OPS:
                    return "logits"
                if kind not in _PASS_THROUGH:
                    return None
                value = next(iter(node.inputs()))
        except (StopIteration, RuntimeError):
            return None
        return None
    fx_graph = getattr(module, "graph", None)
    if fx_graph is not None and hasattr(fx_graph, "nodes"):  # torch.export / torch.fx (MLflow's pt2)
        return _fx_output_kind(fx_graph)
    children = list(module.children()) if hasattr(module, "children") else []
    if type(module).__name__ == "Sequential" and children:
        last = type(children[-1]).__name__
        if last in ("Sigmoid", "Softmax"):
            return "probabilities"
        if last in ("Linear", "Bilinear"):
            return "logits"
    return None


def _fx_output_kind(graph: Any) -> str | None:
    output = next((n for n in graph.nodes if n.op == "output"), None)
    value = output.args[0] if output is not None and output.args else None
    for _ in range(16):
        while isinstance(value, (tuple, list)) and value:
            value = value[0]
        if getattr(value, "op", None) != "call_function":
            return None
        parts = str(value.target).split(".")  # "aten.linear.default" -> "aten::linear"
        kind = "::".join(parts[:2]) if len(parts) >= 2 else str(value.target)
        if kind in _PROBABILITY_OPS:
            return "probabilities"
        if kind in _LINEAR_OPS:
            return "logits"
        if kind not in _PASS_THROUGH or not value.args:
            return None
        value = value.args[0]
    return None
