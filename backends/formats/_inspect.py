"""Cheap looks at an artifact's bytes, for sniffing: stdlib only, nothing is unpickled."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

# torch.save's legacy (non-zip) files start with a pickle of this magic number.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def torch_zip_entries(path: str) -> set[str] | None:
    """The entry names of a torch zip (TorchScript or torch.save) without their top folder, or None."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    return inner if "data.pkl" in inner else None


def is_torchscript(entries: set[str] | None) -> bool:
    return bool(entries) and "constants.pkl" in entries and any(e.startswith("code/") for e in entries)


def read_zip_member(path: str, suffix: str) -> bytes | None:
    """The bytes of the first entry whose name ends with `suffix` (e.g. "/data.pkl")."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(suffix):
                return archive.read(name)
    return None


def is_legacy_torch_pickle(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        return fh.read(len(LEGACY_TORCH_MAGIC)) == LEGACY_TORCH_MAGIC


def sibling_features(path: str) -> list[str] | None:
    """Feature names from a features.json / metadata.json beside the artifact (the seed's S3 layout)."""
    folder = Path(path).parent
    for name in ("features.json", "metadata.json"):
        found = features_from_json((folder / name).read_bytes()) if (folder / name).is_file() else None
        if found:
            return found
    return None


def features_from_json(raw: bytes | str) -> list[str] | None:
    """A JSON list of names, or an object with "features" (also under "signature"/"input")."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(data, dict):
        data = data.get("features") or data.get("feature_names") or data.get("input_features")
    if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
        return list(data)
    return None


def option_features(options: dict[str, Any]) -> list[str] | None:
    value = options.get("features")
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return list(value)
    return None
