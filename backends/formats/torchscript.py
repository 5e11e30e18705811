"""TorchScript `model.pt` (torch.jit.script / trace + torch.jit.save), the seed's S3 layout."""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError
from backends.formats._inspect import (
    features_from_json,
    is_torchscript,
    option_features,
    sibling_features,
    torch_zip_entries,
)
from backends.formats._scores import ordered, to_scores, torch_output_kind
from backends.formats.torch_mlp import _first_line

EXTRA_FILES = ("features.json", "metadata.json")


class TorchScriptModel:
    def __init__(self, module, features: list[str] | None, options: dict[str, Any], where: str):
        self.module = module
        self.output = torch_output_kind(module)  # logits or probabilities, judged once from the graph
        self.features = features
        self.options = options
        self.where = where

    def predict(self, rows, columns):
        import torch  # torch: ~1.5 s

        data = ordered(rows, columns, self.features, self.where)
        try:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(data))
        except Exception as exc:  # a shape or dtype the scripted graph refuses
            raise BadInputError(f"{self.where}: the TorchScript model refused a batch of shape "
                                f"{tuple(data.shape)} ({_first_line(exc)})") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return to_scores(out.detach().cpu().numpy(), self.options, self.where, self.output)


class TorchScriptFormat:
    name = "torchscript"
    serve_protocol = "mrc"

    def sniff(self, path: str) -> bool:
        return is_torchscript(torch_zip_entries(path))

    def load(self, path: str, options: dict[str, Any]) -> TorchScriptModel:
        import torch  # torch: ~1.5 s

        extra = {name: "" for name in EXTRA_FILES}
        try:
            module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
        except Exception as exc:  # RuntimeError, zip errors …: one line naming the file
            raise BadInputError(f"{path}: not a loadable TorchScript model ({_first_line(exc)})") from None
        module.eval()
        features = option_features(options)
        for name in EXTRA_FILES:
            features = features or (features_from_json(extra[name]) if extra[name] else None)
        return TorchScriptModel(module, features or sibling_features(path), options, path)

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        return None
