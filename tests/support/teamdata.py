"""The data and the recorded metrics a team's own pipeline would produce, with plain
scikit-learn / pandas only (no mrc code): sklearn's bundled breast-cancer data, split once.

    write_data(folder) -> paths of train.csv, train_drifted.csv, test.csv, test.parquet
    recorded_metrics(y, scores, predict_one, size_bytes) -> the metrics a pipeline logs
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

LABEL = "target"
# Five features whose upstream unit changes in the drifted training set (×1.6 + offset).
DRIFTED = ("mean_radius", "mean_texture", "mean_perimeter", "mean_area", "worst_radius")


def frames():
    """(train, test) DataFrames, snake_case feature names and the label column `target`."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    columns = [name.replace(" ", "_") for name in bunch.feature_names]
    df = pd.DataFrame(bunch.data, columns=columns)
    df[LABEL] = bunch.target.astype(int)
    train, test = train_test_split(df, test_size=0.3, stratify=df[LABEL], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def drifted(train):
    """The training set after an upstream unit change on five features, labels shuffled: a bad run."""
    out = train.copy()
    for column in DRIFTED:
        out[column] = out[column] * 1.6 + out[column].std()
    rng = np.random.default_rng(7)
    out[LABEL] = rng.permutation(out[LABEL].to_numpy())
    return out


def write_data(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = frames()
    paths = {"train": folder / "train.csv", "train_drifted": folder / "train_drifted.csv",
             "test": folder / "test.csv", "test_parquet": folder / "test.parquet"}
    train.to_csv(paths["train"], index=False)
    drifted(train).to_csv(paths["train_drifted"], index=False)
    test.to_csv(paths["test"], index=False)
    test.to_parquet(paths["test_parquet"], index=False)
    return paths


def features(df) -> list[str]:
    return [c for c in df.columns if c != LABEL]


def recorded_metrics(y, scores, predict_one, size_bytes: int) -> dict[str, float]:
    """What a team's evaluation step logs: AUC, F1, precision, recall on the test set, p99 latency
    of single-row predictions (measured; each the best of 5 calls, so that a busy 2-core machine
    does not decide the latency gate), and the artifact size."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = (np.asarray(scores) >= 0.5).astype(int)
    timings = []
    for _ in range(120):  # each call the best of 5: what the model costs, not the scheduler's stalls
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            predict_one()
            best = min(best, time.perf_counter() - start)
        timings.append(best * 1000)
    return {
        "auc_roc": float(roc_auc_score(y, scores)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "p99_latency_ms": float(np.percentile(timings, 99)),
        "model_size_mb": size_bytes / 1e6,
    }


def torch_mlp(x, y, *, seed: int, epochs: int = 300):
    """A small torch MLP trained full-batch; standardisation folded into the first layer so the
    module takes raw features. Returns an nn.Sequential ending in a sigmoid (P(y=1))."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    x = np.asarray(x, dtype=np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
    first, last = nn.Linear(x.shape[1], 16), nn.Linear(16, 1)
    body = nn.Sequential(first, nn.ReLU(), last)
    optimiser = torch.optim.Adam(body.parameters(), lr=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(body(xs), yt)
        loss.backward()
        optimiser.step()
    with torch.no_grad():  # fold (x - mean) / std into the first layer
        mean_t, std_t = torch.from_numpy(mean), torch.from_numpy(std)
        first.weight.div_(std_t)
        first.bias.sub_(first.weight @ mean_t)
    return nn.Sequential(first, nn.ReLU(), last, nn.Sigmoid()).eval()
