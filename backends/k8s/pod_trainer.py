"""The training container's entry point: `python -m backends.k8s.pod_trainer`.

Runs inside the Job's pod. Reads its spec from $MRC_TRAINER_SPEC (JSON, written into the Job
manifest by the console), finds the datasets under $MRC_DATA_ROOT (the mounted data volume),
refuses data whose sha256 is not the one the console recorded, trains with the same code as
local training, and prints one JSON event per line to stdout — the pod log the console
streams. The last line is a `result` event carrying metrics, environment and the model bytes
(base64, with their sha256), so the console registers the artifact without reaching into the
cluster's storage. With `store: s3` in the spec the data come from object storage instead of the
volume (each verified against its recorded sha256) and the model goes there: the result event
then carries its key and sha256, not its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from backends.native.trainer import emit, train


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _s3(store: dict):
    import boto3  # boto3: ~0.15 s
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=store.get("endpoint_url") or None, region_name=store.get("region") or None,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      s3={"addressing_style": "path"} if store.get("endpoint_url") else {}))


def main() -> int:
    try:
        spec = json.loads(os.environ["MRC_TRAINER_SPEC"])
        data_root = Path(os.environ.get("MRC_DATA_ROOT", "/data"))
        out_dir = Path(tempfile.mkdtemp(prefix="mrc-train-"))
        trainer_spec = {"run_id": spec["run_id"], "out_dir": str(out_dir), "label": spec["label"],
                        "params": spec.get("params", {}), "gpu": spec.get("gpu", False)}
        store = spec.get("store") or {}
        client = _s3(store) if store.get("kind") == "s3" else None
        for key in ("train", "test", "golden"):
            ref = spec.get(f"{key}_data")
            if not ref:
                continue
            if client is not None:
                path = out_dir / f"{key}.csv"
                client.download_file(store["bucket"], ref["s3_key"], str(path))
            else:
                path = data_root / ref["path"]
            actual = _sha256(path)
            if actual != ref["sha256"]:
                raise ValueError(f"{path}: sha256 {actual} is not the recorded {ref['sha256']} of {ref['ref']}")
            trainer_spec[f"{key}_csv"] = str(path)
        emit("log", message=f"pod {os.environ.get('HOSTNAME', '?')}: data verified, training run {spec['run_id']}")
        result = train(trainer_spec)
        model_path = Path(result.pop("model_path"))
        blob = model_path.read_bytes()
        if client is not None:
            client.put_object(Bucket=store["bucket"], Key=store["model_key"], Body=blob)
            emit("result", state="succeeded", metrics=result["metrics"], params=result["params"],
                 environment=result["environment"], model_sha256=hashlib.sha256(blob).hexdigest(),
                 model_key=store["model_key"])
            return 0
        emit("result", state="succeeded", metrics=result["metrics"], params=result["params"],
             environment=result["environment"], model_sha256=hashlib.sha256(blob).hexdigest(),
             model_b64=base64.b64encode(blob).decode("ascii"))
        return 0
    except Exception as exc:  # the console reads the failure from the log; the Job marks it failed
        traceback.print_exc(file=sys.stderr)
        emit("result", state="failed", message=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
