"""Local training: torch in a subprocess (CUDA when asked for and present, else CPU).

A run lives in runs/<job id>/: spec.json, job.json (pid, times), log.jsonl (the trainer's
stdout: progress, log and done events), stderr.log, and on completion model.pt, metrics.json
and result.json. Any process can read a job's status from that folder, so the console, the CLI
and a restarted console all see the same run.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from backends.base import BadInputError, NotFoundError, TrainingJob, TrainingSpec, check_name
from backends.native.datasets import DatasetStore
from backends.support.procs import alive
from backends.support.timeutil import now_iso


def _now() -> str:
    return now_iso()


# The trainer's parameters and the type each must have (bool is refused where a number is asked).
PARAM_TYPES = {"hidden": int, "layers": int, "epochs": int, "batch_size": int, "seed": int,
               "lr": float, "weight_decay": float, "dropout": float}


# open intervals a value must lie in (dropout is a probability; a zero learning rate learns nothing)
PARAM_RANGES = {"dropout": (None, 1.0), "lr": (0.0, None)}


def check_params(params: dict[str, Any]) -> None:
    for key, value in params.items():
        kind = PARAM_TYPES.get(key)
        if kind is None:
            raise BadInputError(f"--param {key}: unknown (known: {', '.join(sorted(PARAM_TYPES))})")
        ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if not ok or isinstance(value, bool) or not math.isfinite(value) or value < 0 \
                or (kind is int and key != "seed" and value < 1):
            raise BadInputError(f"--param {key}={str(value)[:40]!r}: must be a "
                                f"{'whole number >= 1' if kind is int else 'finite number >= 0'}")
        low, high = PARAM_RANGES.get(key, (None, None))
        if (low is not None and value <= low) or (high is not None and value >= high):
            raise BadInputError(f"--param {key}={value!r}: must be within ({low}, {high})")


class LocalTraining:
    def __init__(self, root: str | Path, config: dict[str, Any] | None = None):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.config = config or {}
        self.datasets = DatasetStore(self.root)
        self._procs: dict[str, subprocess.Popen] = {}

    def check_params(self, params: dict[str, Any]) -> None:
        """Refuse bad parameters before anything runs (`mrc watch` asks before it computes drift)."""
        check_params(params)

    def _run_dir(self, job_id: str) -> Path:
        check_name(job_id, "job id")
        path = self.runs / job_id
        if not (path / "job.json").exists():
            raise NotFoundError(f"unknown training job {job_id!r}")
        return path

    def launch(self, spec: TrainingSpec) -> TrainingJob:
        check_name(spec.model, "model")
        train_path = self.datasets.verified_path(spec.data_version)
        dataset = self.datasets.get(spec.data_version)
        label = spec.label or dataset.label
        if not label:
            raise BadInputError(f"dataset {spec.data_version}: no label column recorded; pass a label")
        if label not in dataset.columns:
            raise BadInputError(f"dataset {spec.data_version}: label {label!r} is not one of its columns")
        check_params(spec.params)  # before any run folder or process exists
        eval_paths = {}
        for key, ref in (("test_csv", spec.test_data), ("golden_csv", spec.golden_data)):
            if ref:
                eval_paths[key] = str(self.datasets.verified_path(ref))
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        run_dir = self.runs / job_id
        run_dir.mkdir(parents=True)
        trainer_spec = {
            "run_id": job_id, "out_dir": str(run_dir), "train_csv": str(train_path), "label": label,
            "params": spec.params, "gpu": spec.gpu, **eval_paths,
        }
        (run_dir / "spec.json").write_text(json.dumps({"training_spec": spec.to_dict(), "trainer": trainer_spec,
                                                       "data_sha256": dataset.sha256}, indent=2))
        log = open(run_dir / "log.jsonl", "wb")
        err = open(run_dir / "stderr.log", "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # the trainer must import this checkout's packages even when run from elsewhere
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        (run_dir / "trainer.json").write_text(json.dumps(trainer_spec))
        proc = subprocess.Popen(
            [sys.executable, "-m", "backends.native.trainer", str(run_dir / "trainer.json")],
            stdout=log, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=str(run_dir), start_new_session=True,
        )
        log.close()
        err.close()
        self._procs[job_id] = proc
        job = TrainingJob(job_id, spec.model, "running", 0.0, "started", _now(), "", str(run_dir))
        (run_dir / "job.json").write_text(json.dumps({"pid": proc.pid, **job.to_dict()}, indent=2))
        return job

    def _events(self, run_dir: Path) -> list[dict[str, Any]]:
        events = []
        try:
            text = (run_dir / "log.jsonl").read_text()
        except FileNotFoundError:
            return events
        for line in text.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "log", "message": line})
        return events

    def status(self, job_id: str) -> TrainingJob:
        run_dir = self._run_dir(job_id)
        meta = json.loads((run_dir / "job.json").read_text())
        job = TrainingJob(job_id, meta["model"], meta["state"], 0.0, "", meta["started_at"], meta.get("finished_at", ""),
                          str(run_dir), meta.get("version"))
        proc = self._procs.get(job_id)
        if proc is not None:
            proc.poll()  # reap, so a finished child is not mistaken for a live one
        progress = [e for e in self._events(run_dir) if e.get("event") == "progress"]
        if progress:
            job.progress = float(progress[-1].get("progress", 0.0))
            job.message = f"epoch {progress[-1].get('epoch')}/{progress[-1].get('epochs')} loss {progress[-1].get('loss')}"
        if meta.get("cancelled"):
            job.state = "cancelled"
        elif (run_dir / "result.json").exists():
            result = json.loads((run_dir / "result.json").read_text())
            job.state = result["state"]
            job.message = result.get("message", job.message)
            if job.state == "succeeded":
                job.progress = 1.0
        elif not alive(meta["pid"]):
            job.state = "failed"
            job.message = "the training process exited without a result (see stderr.log)"
        else:
            job.state = "running"
        return job

    def logs(self, job_id: str, *, follow: bool = False, poll_s: float = 0.1) -> Iterator[str]:
        run_dir = self._run_dir(job_id)
        path = run_dir / "log.jsonl"
        with open(path) as fh:
            buffer = ""
            while True:
                chunk = fh.readline()
                if chunk:
                    buffer += chunk
                    if buffer.endswith("\n"):
                        yield buffer.rstrip("\n")
                        buffer = ""
                    continue
                if not follow or self.status(job_id).state not in ("pending", "running"):
                    rest = fh.read()
                    for line in (buffer + rest).splitlines():
                        yield line
                    return
                time.sleep(poll_s)

    def cancel(self, job_id: str) -> TrainingJob:
        run_dir = self._run_dir(job_id)
        meta = json.loads((run_dir / "job.json").read_text())
        if self.status(job_id).state in ("pending", "running"):
            try:
                os.killpg(meta["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            meta["cancelled"] = True
            meta["finished_at"] = _now()
            (run_dir / "job.json").write_text(json.dumps(meta, indent=2))
        return self.status(job_id)

    def record(self, job_id: str, **fields: Any) -> None:
        """Write back what the console learned (finished_at, the registered version)."""
        run_dir = self._run_dir(job_id)
        meta = json.loads((run_dir / "job.json").read_text())
        meta.update(fields)
        (run_dir / "job.json").write_text(json.dumps(meta, indent=2))

    def result(self, job_id: str) -> dict[str, Any]:
        run_dir = self._run_dir(job_id)
        result = json.loads((run_dir / "result.json").read_text())
        spec = json.loads((run_dir / "spec.json").read_text())
        result["data_sha256"] = spec["data_sha256"]
        result["training_spec"] = spec["training_spec"]
        return result
