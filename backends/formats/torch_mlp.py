"""mrc's own artifact: the tabular torch MLP of backends/native/mlp.py ("torch-mlp-v1")."""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError
from backends.formats._inspect import is_torchscript, read_zip_member, torch_zip_entries
from backends.formats._scores import ordered


class TorchMlpModel:
    def __init__(self, net, features: list[str] | None, where: str):
        self.net = net
        self.features = features
        self.where = where

    def predict(self, rows, columns):
        data = ordered(rows, columns, self.features, self.where)
        if data.shape[1] != self.net.mean.shape[0]:
            raise BadInputError(f"{self.where}: the model takes {self.net.mean.shape[0]} columns, "
                                f"the data has {data.shape[1]}")
        from backends.native import mlp  # torch: ~1.5 s (mlp.py imports it at the top)

        return mlp.predict_proba(self.net, data).astype(float).reshape(-1)


class TorchMlpFormat:
    name = "torch-mlp-v1"
    serve_protocol = "mrc"

    def sniff(self, path: str) -> bool:
        entries = torch_zip_entries(path)
        if entries is None or is_torchscript(entries):
            return False
        return b"torch-mlp-v1" in (read_zip_member(path, "/data.pkl") or b"")

    def load(self, path: str, options: dict[str, Any]) -> TorchMlpModel:
        from backends.native import mlp  # torch: ~1.5 s (mlp.py imports it at the top)

        try:
            net, arch = mlp.load_with_arch(path)
        except Exception as exc:  # torch raises many kinds on a bad file; one line says which file
            raise BadInputError(f"{path}: not a loadable {self.name} artifact ({_first_line(exc)})") from None
        features = arch.get("features")
        return TorchMlpModel(net, list(features) if features else None, path)

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
