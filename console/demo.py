"""Build the demo workspace: real data, real torch training, a production model and a candidate.

No network: the data is scikit-learn's bundled Wisconsin breast-cancer set (569 rows, 30
numeric features, binary label; 14 of the features are kept, see FEATURE_KINDS). Data versions: v1 (a sample of the training pool), v2 (the
whole pool), v3-drifted (covariate shift on six features plus label noise: a genuinely worse
source). Five versions are trained in subprocesses, one at a time so that the p99 latency each
measures is not disturbed by another training.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from backends.base import PRODUCTION, BackendError, BadInputError, TrainingSpec
from console.assets import asset_path
from console.evaluate.drift import version_drift
from console.release.actions import decide, promote, set_alias
from console.training import register_result
from console.workspace import Workspace

MODEL = "breast-cancer"
# The whole set is too easy (every decent model scores AUC 1.0 on the test split); the texture,
# smoothness, symmetry and fractal features plus two size cues land near AUC 0.96, where the
# differences between versions show.
FEATURE_KINDS = ("texture", "smoothness", "symmetry", "fractal")
EXTRA_FEATURES = ("mean compactness", "radius error")
DATASET = "breast_cancer"
LABEL = "malignant"

# (params, data version, parent) of each demo version, in registration order.
VERSIONS = [
    ({"hidden": 16, "epochs": 40, "lr": 0.01, "seed": 1}, "v1", None),
    ({"hidden": 32, "epochs": 60, "lr": 0.01, "seed": 2}, "v2", "1"),
    ({"hidden": 2, "epochs": 2, "lr": 0.0005, "seed": 3}, "v1", "1"),  # under-trained: worse
    ({"hidden": 32, "epochs": 60, "lr": 0.01, "seed": 4}, "v3-drifted", "2"),  # bad data: worse
    ({"hidden": 64, "layers": 2, "epochs": 80, "lr": 0.005, "dropout": 0.1, "seed": 5}, "v2", "2"),
]

DEMO_TOML = f"""\
# mrc demo workspace. Each role names a backend; a role left out uses `local`.
[registry]
backend = "local"

[training]
backend = "local"

[traffic]
backend = "local"

[metrics]
backend = "local"

[models.{MODEL}]
train_data = "{DATASET}@v2"
test_data = "{DATASET}-test@v1"
golden_data = "{DATASET}-golden@v1"
label = "{LABEL}"
gate_policy = "gate_policy.json"
"""


def _clean_name(name: str) -> str:
    return name.replace(" ", "_")


def build_datasets(ws) -> None:
    from sklearn.datasets import load_breast_cancer  # sklearn: ~1.2 s

    raw = load_breast_cancer()
    names = list(raw.feature_names)
    keep = [names.index(n) for n in names if any(k in n for k in FEATURE_KINDS)] + [names.index(n) for n in EXTRA_FEATURES]
    # sklearn labels 0 = malignant; the positive class we care to catch is malignant
    X, y = raw.data[:, keep], (raw.target == 0).astype(float)
    columns = [_clean_name(names[i]) for i in keep] + [LABEL]
    rng = np.random.default_rng(20261123)
    order = rng.permutation(len(X))
    n_test, n_golden = 142, 85
    test, golden, pool = order[:n_test], order[n_test:n_test + n_golden], order[n_test + n_golden:]
    store = ws.datasets()

    def table(idx, Xs=None, ys=None):
        return np.column_stack([X[idx] if Xs is None else Xs, y[idx] if ys is None else ys])

    store.add(f"{DATASET}-test", "v1", columns, table(test), label=LABEL, note="held-out test set")
    store.add(f"{DATASET}-golden", "v1", columns, table(golden), label=LABEL, note="frozen golden set")
    v1 = pool[: int(len(pool) * 0.7)]
    store.add(DATASET, "v1", columns, table(v1), label=LABEL, note="70% sample of the training pool")
    store.add(DATASET, "v2", columns, table(pool), label=LABEL, parent=f"{DATASET}@v1", note="the whole training pool")
    shifted = X[pool].copy()
    for j in range(0, X.shape[1], 3):  # five features: a unit change upstream (x1.6) and noise
        shifted[:, j] = shifted[:, j] * 1.6 + rng.normal(0, shifted[:, j].std() * 0.5, len(pool))
    noisy = y[pool].copy()
    flip = rng.random(len(pool)) < 0.2
    noisy[flip] = 1 - noisy[flip]
    store.add(DATASET, "v3-drifted", columns, table(pool, shifted, noisy), label=LABEL, parent=f"{DATASET}@v2",
              note="upstream unit change on five features and 20% label noise")


def build(root: str | Path, *, actor: str = "demo", force: bool = False,
          progress: Callable[[str, float], None] | None = None):
    """Create the demo workspace at root; return the opened Workspace."""
    say = progress or (lambda message, fraction: None)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise BadInputError(f"workspace {root}: is not a folder")
    if root.exists() and any(root.iterdir()):
        if not force:
            raise BadInputError(f"workspace {root}: not empty (use --force to rebuild the demo there)")
        shutil.rmtree(root)
    Workspace.init(root)
    (root / "mrc.toml").write_text(DEMO_TOML)

    shutil.copyfile(asset_path("gate_policy.json"), root / "gate_policy.json")
    ws = Workspace.open(root)
    registry = ws.registry()
    registry.ensure_schema()
    ws.audit().ensure_schema()
    say("datasets: breast_cancer v1, v2, v3-drifted, test, golden", 0.05)
    build_datasets(ws)

    training = ws.training()
    cfg = ws.model_config(MODEL)
    specs = [
        TrainingSpec(MODEL, f"{DATASET}@{data}", params, parent_version=parent, label=LABEL,
                     test_data=cfg["test_data"], golden_data=cfg["golden_data"])
        for params, data, parent in VERSIONS
    ]
    started = time.monotonic()

    def run(spec: TrainingSpec) -> str:
        job = training.launch(spec)
        while training.status(job.id).state in ("pending", "running"):
            time.sleep(0.1)
        return job.id

    with ThreadPoolExecutor(max_workers=1) as pool:
        futures = [pool.submit(run, spec) for spec in specs]
        reported = -1
        while not all(f.done() for f in futures):
            done = sum(f.done() for f in futures)
            if done != reported:  # one line per finished version, not a line per poll
                say(f"training versions: {done}/{len(specs)} done ({time.monotonic() - started:.0f}s)",
                    0.1 + 0.8 * done / len(specs))
                reported = done
            time.sleep(0.2)
        jobs = [f.result() for f in futures]

    for i, (job_id, spec) in enumerate(zip(jobs, specs)):
        status = training.status(job_id)
        if status.state != "succeeded":
            raise BackendError(f"demo training {job_id} {status.state}: {status.message}")
        register_result(registry, ws.audit(), training, job_id, spec, actor=actor, make_candidate=False)
    say("registering, approving and promoting", 0.92)
    audit = ws.audit()
    decide(registry, audit, MODEL, "1", status="approved", actor=actor, reason="first model: offline metrics reviewed")
    promote(registry, audit, MODEL, "1", actor=actor, reason="initial release")
    decide(registry, audit, MODEL, "2", status="approved", actor=actor, reason="better AUC on v2 data")
    promote(registry, audit, MODEL, "2", actor=actor, reason="scheduled retrain on data v2")
    decide(registry, audit, MODEL, "3", status="rejected", actor=actor, reason="under-trained: AUC far below production")
    decide(registry, audit, MODEL, "4", status="rejected", actor=actor, reason="trained on drifted data v3")
    set_alias(registry, audit, MODEL, "archived", "1", actor=actor, reason="superseded by 2")
    set_alias(registry, audit, MODEL, "candidate", "5", actor=actor, reason="retrain with a wider network")
    assert registry.get_pointers(MODEL)[PRODUCTION] == "2"

    version_drift(ws, MODEL, "5")  # records the candidate's drift status for `mrc models` and home
    say(f"demo workspace ready in {time.monotonic() - started:.0f}s: {root}", 1.0)
    return ws
