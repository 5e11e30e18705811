"""The training process: `python -m backends.native.trainer SPEC.json`.

Runs in its own process so torch never loads into the console. Prints one JSON object per line
on stdout (progress, log, done) and leaves model.pt, metrics.json and result.json in the run
folder. The parent registers the result; this process never touches the registry.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from backends.native import mlp
from backends.native.datasets import read_csv
from backends.native.metrics import classification_metrics, percentile


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def environment(device: str) -> dict:
    import hashlib
    from importlib import metadata

    import numpy  # numpy: ~0.08 s
    import torch

    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"])
    return {
        "python": platform.python_version(),
        "frameworks": {"torch": torch.__version__, "numpy": numpy.__version__},
        "packages_digest": "sha256:" + hashlib.sha256("\n".join(packages).encode()).hexdigest(),
        "device": device,
    }


def train(spec: dict) -> dict:
    import numpy as np  # numpy: ~0.08 s
    import torch

    out = Path(spec["out_dir"])
    params = {"hidden": 32, "layers": 1, "dropout": 0.0, "epochs": 50, "lr": 0.01,
              "weight_decay": 0.0, "batch_size": 64, "seed": 0, **spec.get("params", {})}
    seed = int(params["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = "cuda" if spec.get("gpu") and torch.cuda.is_available() else "cpu"
    if spec.get("gpu") and device == "cpu":
        emit("log", message="GPU requested but CUDA is not available: training on CPU")
    label = spec["label"]
    columns, data = read_csv(spec["train_csv"])
    li = columns.index(label)
    features = [c for c in columns if c != label]
    X = np.delete(data, li, axis=1).astype(np.float32)
    y = data[:, li].astype(np.float32)
    arch = {"n_features": X.shape[1], "hidden": int(params["hidden"]), "layers": int(params["layers"]),
            "dropout": float(params["dropout"]), "features": features, "label": label}
    net = mlp.build(arch)
    net.mean.copy_(torch.as_tensor(X.mean(axis=0)))
    net.std.copy_(torch.as_tensor(X.std(axis=0) + 1e-6))
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    Xt, yt = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    epochs, batch = int(params["epochs"]), int(params["batch_size"])
    gen = torch.Generator().manual_seed(seed)
    emit("log", message=f"training on {device}: {len(X)} rows, {X.shape[1]} features, {epochs} epochs")
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(len(Xt), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(Xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        emit("progress", epoch=epoch, epochs=epochs, loss=round(total / len(Xt), 6), progress=epoch / epochs)
    net = net.to("cpu").eval()
    model_path = out / "model.pt"
    mlp.save(net, arch, str(model_path))
    net = mlp.load(str(model_path))  # evaluate exactly what was saved

    metrics: dict[str, float] = {}
    for prefix, key in (("", "test_csv"), ("golden_", "golden_csv")):
        if spec.get(key):
            cols, d = read_csv(spec[key])
            j = cols.index(label)
            scores = mlp.predict_proba(net, np.delete(d, j, axis=1))
            metrics.update(classification_metrics(d[:, j], scores, prefix=prefix))
    # p99 latency: time real single-row inferences after a warm-up.
    row = X[:1]
    for _ in range(20):
        mlp.predict_proba(net, row)
    timings = []
    for i in range(300):
        t0 = time.perf_counter()
        mlp.predict_proba(net, X[i % len(X):i % len(X) + 1])
        timings.append((time.perf_counter() - t0) * 1000)
    metrics["p50_latency_ms"] = percentile(timings, 50)
    metrics["p99_latency_ms"] = percentile(timings, 99)
    metrics["model_size_mb"] = model_path.stat().st_size / 1e6
    metrics = {k: round(float(v), 6) for k, v in metrics.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return {"state": "succeeded", "metrics": metrics, "params": params, "arch": arch,
            "environment": environment(device), "model_path": str(model_path)}


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    out = Path(spec["out_dir"])
    try:
        result = train(spec)
    except Exception as exc:  # the parent reads result.json; the traceback goes to the log
        traceback.print_exc()
        result = {"state": "failed", "message": f"{type(exc).__name__}: {exc}"}
    # Readers poll for result.json while this process runs: it appears whole or not at all.
    partial = out / ".result.json.tmp"
    partial.write_text(json.dumps(result, indent=2, sort_keys=True))
    os.replace(partial, out / "result.json")
    emit("done", state=result["state"], message=result.get("message", ""))
    return 0 if result["state"] == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
