"""Model formats: artifacts built by the plain libraries (sklearn, torch, onnx, MLflow), loaded
through mrc's format seam. The registry tests use the real servers of tests/support/servers.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.remote import (  # noqa: F401  (fixtures)
    _remote_credentials,
    mlflow_server,
    s3_server,
)


@pytest.fixture(scope="session")
def cancer():
    """sklearn's breast-cancer data as (X float64, y, column names), and a fitted LogisticRegression."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target)
    columns = [str(c) for c in data.feature_names]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return X, y, columns, clf


@pytest.fixture(scope="session")
def torch_net(cancer):
    """A small torch classifier (logits out) trained a few steps on the standardised data."""
    import torch
    from torch import nn

    X, y, _, _ = cancer
    torch.manual_seed(0)
    mean, std = X.mean(axis=0), X.std(axis=0)

    net = nn.Sequential(_standardise(mean, std), nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(net(xt).squeeze(-1), yt)
        loss.backward()
        opt.step()
    return net.eval()


def _standardise(mean, std):
    import torch
    from torch import nn

    class Standardise(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

        def forward(self, x):
            return (x - self.mean) / self.std

    return Standardise()


def torch_probabilities(net, X) -> np.ndarray:
    """What the plain library says: sigmoid of the net's logits."""
    import torch

    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor(X, dtype=torch.float32))).squeeze(-1).numpy().astype(np.float64)
