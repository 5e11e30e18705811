"""A whole torch module pickled with torch.save(model): refused unless the registry is trusted.

Unpickling runs whatever code the file names, so loading one from a shared registry hands that
registry's writers a shell on the machine. `trust_pickle = true` under [models.X] allows it.
"""

from __future__ import annotations

from typing import Any

from backends.base import BadInputError
from backends.formats._inspect import (is_legacy_torch_pickle, is_torchscript, option_features, read_zip_member,
                                       sibling_features, torch_zip_entries)
from backends.formats.torch_mlp import _first_line
from backends.formats.torchscript import TorchScriptModel


def refusal(path: str) -> str:
    return (f"{path}: a pickled torch model runs arbitrary code when loaded; refused. For a trusted registry "
            "set `trust_pickle = true` under [models.<model>] in mrc.toml")


class TorchPickleFormat:
    name = "torch-pickle"
    serve_protocol = "mrc"

    def sniff(self, path: str) -> bool:
        entries = torch_zip_entries(path)
        if entries is None:
            return is_legacy_torch_pickle(path)
        if is_torchscript(entries):
            return False
        return b"torch-mlp-v1" not in (read_zip_member(path, "/data.pkl") or b"")

    def load(self, path: str, options: dict[str, Any]) -> TorchScriptModel:
        import torch  # torch: ~1.5 s

        if options.get("trust_pickle") is not True:
            try:  # the safe unpickler: plain tensors load, any class reference is refused
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception:
                raise BadInputError(refusal(path)) from None
            raise BadInputError(f"{path}: holds weights only (a state_dict), not a model mrc can run; "
                                "save it with torch.jit.script + torch.jit.save or torch.onnx.export")
        try:
            module = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a missing class, a broken file …
            raise BadInputError(f"{path}: not a loadable pickled torch model ({_first_line(exc)})") from None
        if not isinstance(module, torch.nn.Module):
            raise BadInputError(f"{path}: holds a {type(module).__name__}, not a torch module")
        module.eval()
        return TorchScriptModel(module, option_features(options) or sibling_features(path), options, path)

    def serve_argv(self, path: str, host: str, port: int, options: dict[str, Any]) -> list[str] | None:
        return None
