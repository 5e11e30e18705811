"""ONNX models, run by onnxruntime on the CPU (skl2onnx, torch.onnx.export, any other exporter)."""

from __future__ import annotations

import os
from typing import Any

from backends.base import BadInputError
from backends.formats._inspect import features_from_json, option_features, sibling_features
from backends.formats._scores import ordered, to_scores
from backends.formats.torch_mlp import _first_line

# A serialized ModelProto starts with field 1 (ir_version, varint: tag 0x08), then a small
# version number and the tag of one of the fields that follow it in the schema.
_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0x7A}
_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
           "tensor(int32)": "int32", "tensor(float16)": "float16", "tensor(bool)": "bool"}


_PASS_THROUGH = {"Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity", "Cast", "Gather", "Slice"}
_LINEAR = {"Gemm", "MatMul", "Add", "Sub"}


def output_kind(path: str, output_name: str) -> str | None:
    """"probabilities" after a Sigmoid/Softmax, "logits" after a linear op, else None (unknown).

    Needs the `onnx` package to read the graph; without it the batch decides (see _scores)."""
    try:
        import onnx  # onnx: ~0.7 s
    except ImportError:
        return None
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception:  # whatever onnx raises, the model still runs; only the hint is lost
        return None
    producers = {out: node for node in graph.node for out in node.output}
    name = output_name
    for _ in range(16):
        node = producers.get(name)
        if node is None or not node.input:
            return None
        if node.op_type in ("Sigmoid", "Softmax"):
            return "probabilities"
        if node.op_type in _LINEAR and not node.domain:
            return "logits"
        if node.op_type not in _PASS_THROUGH:
            return None
        name = node.input[0]
    return None


class OnnxModel:
    def __init__(self, session, features: list[str] | None, per_column: bool, options: dict[str, Any], where: str):
        self.session = session
        specs = session.get_outputs()
        self.output = output_kind(where, specs[_pick_index(specs)].name)  # judged once, from the graph
        self.features = features
        self.per_column = per_column
        self.options = options
        self.where = where

    def predict(self, rows, columns):
        import numpy as np  # numpy: ~0.08 s

        data = ordered(rows, columns, self.features, self.where, dtype="float64")
        inputs = self.session.get_inputs()
        if self.per_column:
            feed = {}
            for j, spec in enumerate(inputs):
                column = data[:, j].astype(_DTYPES.get(spec.type, "float32"))
                feed[spec.name] = column.reshape(-1, 1) if len(spec.shape or []) == 2 else column
        else:
            feed = {inputs[0].name: data.astype(_DTYPES.get(inputs[0].type, "float32"))}
        try:
            outputs = self.session.run(None, feed)
        except Exception as exc:  # onnxruntime's Fail / InvalidArgument on a wrong shape
            raise BadInputError(f"{self.where}: the ONNX model refused a batch of shape {tuple(data.shape)} "
                                f"({_first_line(exc)})") from None
        chosen = outputs[_pick_index(self.session.get_outputs())]
        if isinstance(chosen, list) and chosen and isinstance(chosen[0], dict):  # skl2onnx zipmap
            keys = sorted(chosen[0])
            positive = 1 if 1 in keys else ("1" if "1" in keys else keys[-1])
            return np.array([row[positive] for row in chosen], dtype=np.float64)
        return to_scores(chosen, self.options, self.where, self.output)


def _pick_index(specs) -> int:
    """Probabilities when the model gives them (skl2onnx: label + probabilities), else the first float."""
    for i, spec in enumerate(specs):
        if spec.type.startswith("seq(map"):
            return i
    for i, spec in enumerate(specs):
        if "prob" in spec.name.lower() and spec.type in ("tensor(float)", "tensor(double)"):
            return i
    for i, spec in enumerate(specs):
        if spec.type in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            return i
    return 0



class OnnxFormat:
    name = "onnx"
    serve_protocol = "mrc"

    def sniff(self, path: str) -> bool:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            head = fh.read(16)
        if len(head) < 3 or head[0] != 0x08:
            return False
        i = 1
        while i < len(head) and head[i] & 0x80:  # the ir_version varint
            i += 1
        version = head[1]
        return i + 1 < len(head) and 1 <= version <= 64 and head[i + 1] in _NEXT_TAGS

    def load(self, path: str, options: dict[str, Any]) -> OnnxModel:
        try:
            import onnxruntime as ort  # onnxruntime: ~0.13 s
        except ImportError:
            raise BadInputError(f"{path}: ONNX models need onnxruntime (pip install 'mrc[onnx]')") from None
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3  # errors only: stderr is for one-line messages
        session_options.intra_op_num_threads = 1
        try:
            session = ort.InferenceSession(path, sess_options=session_options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # InvalidProtobuf, NoSuchFile …
            raise BadInputError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from None
        inputs = session.get_inputs()
        if not inputs:
            raise BadInputError(f"{path}: the ONNX model has no inputs")
        per_column = len(inputs) > 1
        if per_column:
            features = [spec.name for spec in inputs]
        else:
            meta = session.get_modelmeta().custom_metadata_map or {}

            features = option_features(options) or features_from_json(meta.get("features", "")) \
                or sibling_features(path)
        return OnnxModel(session, features, per_column, options, path)

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        return None
