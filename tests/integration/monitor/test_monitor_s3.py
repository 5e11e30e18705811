"""The monitor reading files on S3 (issue 21 item 2): JSON-lines and Parquet objects under a
time-partitioned prefix on a real SeaweedFS on 127.0.0.1, written here with plain boto3 and
pyarrow; `mrc monitor MODEL --once --json` with `[monitor] source = "s3"` as a real process.

A clean hour stays ok; the next hour's objects with five features scaled ×1.6 turn it critical;
each object is folded once; a torn line and a foreign object are counted; a bucket that does not
exist is one line, exit 2.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest

from tests.support.prediction_streams import SCALED, rows
from tests.support.remote import _remote_credentials, s3_server  # noqa: F401  (fixtures)

MODEL = "breast-cancer"
BUCKET = "mrc-monitor-logs"
pytestmark = pytest.mark.integration


def records(n: int, *, start: float, step: float, scale: float, seed: int) -> list[dict]:
    columns, data = rows(n, scale, seed)
    return [{"ts": start + i * step, "request_id": f"{seed}-{i}", "model_version": "2", "user": f"user{i % 997}",
             "inputs": dict(zip(columns, map(float, row))), "score": 0.3} for i, row in enumerate(data)]


def put_jsonl(s3, key: str, recs: list[dict], extra: bytes = b"") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(json.dumps(r).encode() for r in recs) + b"\n" + extra)


def put_parquet(s3, key: str, recs: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(recs), buf)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())


def configure(ws: Path, endpoint: str, bucket: str, prefix: str) -> None:
    with open(ws / "mrc.toml", "a") as fh:
        fh.write(f'\n[monitor]\nmin_units = 30\nsource = "s3"\nfeatures = "inputs"\nprediction = "score"\n'
                 f'id = "request_id"\ntime = "ts"\nkey = "user"\nversion = "model_version"\n'
                 f'options = {{ bucket = "{bucket}", prefix = "{prefix}", endpoint_url = "{endpoint}" }}\n')


def monitor(mrc, ws: Path):
    result = mrc("monitor", MODEL, "--once", "--json", "--workspace", str(ws))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.json()


def test_partitioned_objects_clean_ok_then_shifted_critical_each_folded_once(demo_ws, mrc, s3_server):
    s3_server.create_bucket(BUCKET)
    s3 = s3_server.client()
    prefix = f"predictions/{uuid.uuid4().hex[:8]}/"
    configure(demo_ws, s3_server.endpoint, BUCKET, prefix)
    now = time.time()
    clean = records(1500, start=now - 900, step=0.1, scale=1.0, seed=1)
    put_jsonl(s3, f"{prefix}dt=2026-12-08/hour=01/part-0000.jsonl", clean[:700], extra=b'{"ts": 1, "request_id"\n')
    put_parquet(s3, f"{prefix}dt=2026-12-08/hour=01/part-0001.parquet", clean[700:])
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}dt=2026-12-08/hour=01/_SUCCESS.crc", Body=b"x")
    code, first = monitor(mrc, demo_ws)
    assert code == 0 and first["tier"] == "ok", [(f["name"], f["tier"], f["psi"]) for f in first["features"]]
    assert first["records"] == 1500 and first["source"]["read"] == 1500
    bad = first["source"]["bad"]
    assert sum(n for k, n in bad.items() if k.endswith("record: not JSON")) == 1, bad
    assert sum(n for k, n in bad.items() if "not JSON lines or Parquet" in k) == 1, bad

    code, again = monitor(mrc, demo_ws)
    assert again["source"]["read"] == 0 and again["records"] == 1500  # nothing read twice

    after = time.time()  # live records: stamped after the last round, before the next one
    shifted = records(3000, start=after, step=(time.time() - after) / 3000, scale=1.6, seed=2)
    put_jsonl(s3, f"{prefix}dt=2026-12-08/hour=02/part-0000.jsonl", shifted[:1500])
    put_parquet(s3, f"{prefix}dt=2026-12-08/hour=02/part-0001.parquet", shifted[1500:])
    code, report = monitor(mrc, demo_ws)
    assert report["source"]["read"] == 3000 and report["records"] == 4500
    assert code == 1 and report["tier"] == "critical", [(f["name"], f["tier"], f["psi"]) for f in report["features"]]
    critical = {f["name"] for f in report["features"] if f["tier"] == "critical"}
    assert critical and critical <= set(SCALED)


def test_a_bucket_that_does_not_exist_is_one_line_and_exit_2(demo_ws, mrc, s3_server):
    configure(demo_ws, s3_server.endpoint, "no-such-bucket-here", "p/")
    result = mrc("monitor", MODEL, "--once", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "s3://no-such-bucket-here/p/" in lines[0] and "does not exist" in lines[0], result.stderr
