"""The demo's torch model: a small MLP for tabular binary classification.

The artifact carries its architecture and the feature standardisation, so a model server can
load it from the file alone (format "torch-mlp-v1").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "torch-mlp-v1"


class TabularMLP(nn.Module):
    def __init__(self, n_features: int, hidden: int = 32, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


def build(arch: dict[str, Any]) -> TabularMLP:
    return TabularMLP(arch["n_features"], arch.get("hidden", 32), arch.get("layers", 1), arch.get("dropout", 0.0))


def save(model: TabularMLP, arch: dict[str, Any], path: str) -> None:
    torch.save({"format": FORMAT, "arch": arch, "state_dict": model.state_dict()}, path)


def load(path: str, device: str = "cpu") -> TabularMLP:
    return load_with_arch(path, device)[0]


def load_with_arch(path: str, device: str = "cpu") -> tuple[TabularMLP, dict[str, Any]]:
    """The model and its arch (n_features, hidden, …, and the "features" it was trained on)."""
    blob = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} artifact")
    model = build(blob["arch"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), dict(blob["arch"])


@torch.inference_mode()
def predict_proba(model: TabularMLP, rows: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(rows, dtype=np.float32), device=device)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    return torch.sigmoid(model(x)).cpu().numpy()
