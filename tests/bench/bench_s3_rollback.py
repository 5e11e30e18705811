"""S3 rollback wall time beside a bare boto3 script doing the same conditional write, same run.

    .venv/bin/python tests/bench/bench_s3_rollback.py [--repeat 30] [--processes 5]

Starts its own SeaweedFS (`weed mini`) on 127.0.0.1 and stops it at the end. Prints:
  1. in-process: mrc's rollback v2 -> v1 after an untimed promotion (read pointer + newest history, claim the event with If-None-Match,
     write version.txt with If-Match, copy production/metrics.json, audit append) vs bare boto3
     (GET version.txt, PUT with If-Match);
  2. as processes (what an engineer waits for at 3 AM): `python -m console.cli rollback` vs
     `python bare_rollback.py` (GET + conditional PUT), interpreter start and imports included;
     then vs a plain boto3 script making the same 15 requests as mrc's rollback (the issue's
     baseline: "the same reads and conditional write with the plain client");
  3. what SeaweedFS does with racing conditional writes, and the ABA that content ETags allow
     (why mrc commits a move by creating a numbered event object with If-None-Match).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import servers  # noqa: E402
from tests.support.remote import BUCKET, remote_env, s3_toml, write_workspace  # noqa: E402

BARE = textwrap.dedent("""
    import sys, boto3
    from botocore.config import Config
    endpoint, bucket, key = sys.argv[1:4]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
    current = s3.get_object(Bucket=bucket, Key=key)
    old = current["Body"].read().decode()
    new = "v1" if old == "v2" else "v2"
    s3.put_object(Bucket=bucket, Key=key, Body=new.encode(), IfMatch=current["ETag"])
    print(old, "->", new)
""")


# The baseline: the same reads and conditional writes as mrc's rollback (15 requests,
# see docs/registries.md "What a rollback reads"), made one after another with the plain client
# and no checks beyond picking the previous version. Moves v2 <-> v1 like the bare script above.
BARE_SAME = textwrap.dedent("""
    import json, sys, uuid, boto3
    from botocore.config import Config
    endpoint, bucket, prefix = sys.argv[1:4]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
    m = f"{prefix}/models/m/"
    pointer_key, history = m + "production/version.txt", m + "history/production/"
    pointer = s3.get_object(Bucket=bucket, Key=pointer_key)
    old, seq = pointer["Body"].read().decode(), int(pointer["Metadata"]["mrc-seq"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=history,
                                                 StartAfter=f"{history}{seq - 2:010d}.json")["Contents"]]
    events = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
    new = events[-1]["from"]
    folder = m + f"versions/{new}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]
    for name in ("metadata.json", "metrics.json", max(o["Key"] for o in listed if "/approvals/" in o["Key"])):
        s3.get_object(Bucket=bucket, Key=name if name.startswith(folder) else folder + name)["Body"].read()
    s3.head_object(Bucket=bucket, Key=folder + "metadata.json")  # mrc sends these two at once
    again = s3.get_object(Bucket=bucket, Key=pointer_key)
    again["Body"].read()
    last = s3.list_objects_v2(Bucket=bucket, Prefix=history, StartAfter=f"{history}{seq - 1:010d}.json")["Contents"]
    s3.get_object(Bucket=bucket, Key=last[-1]["Key"])["Body"].read()
    event = {"seq": seq + 1, "model": "m", "alias": "production", "from": old, "to": new, "actor": "bare",
             "at": "2026-01-01T00:00:00.000000Z", "reason": "rollback", "move_id": uuid.uuid4().hex,
             "pointer_etag": again["ETag"]}
    s3.put_object(Bucket=bucket, Key=f"{history}{seq + 1:010d}.json", Body=json.dumps(event).encode(), IfNoneMatch="*")
    s3.put_object(Bucket=bucket, Key=pointer_key, Body=new.encode(), IfMatch=again["ETag"],
                  Metadata={"mrc-seq": str(seq + 1)})
    s3.copy_object(Bucket=bucket, Key=m + "production/metrics.json", CopySource={"Bucket": bucket, "Key": folder + "metrics.json"})
    print(old, "->", new)
""")


def stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(samples) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(samples)})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--race-trials", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(remote_env())

    from backends.base import PRODUCTION, Approval, Lineage
    from backends.s3.registry import S3Registry
    from console.release.audit import AuditLog
    from console.release.actions import rollback

    server = servers.SeaweedServer().start()
    try:
        server.create_bucket(BUCKET)
        work = Path(tempfile.mkdtemp(prefix="mrc-bench-"))
        prefix = "bench"
        root = write_workspace(work / "ws", s3_toml(server.endpoint, prefix))
        registry = S3Registry(BUCKET, prefix=prefix, endpoint_url=server.endpoint)
        audit = AuditLog(str(root / "mrc.db"))
        artifact = work / "m.pt"
        artifact.write_bytes(b"weights" * 1000)
        for v in ("v1", "v2"):
            registry.register_version("m", str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(), version=v)
        for v in ("v1", "v2"):  # reviewed, as on a team that reviews in mrc
            registry.set_approval("m", v, Approval(status="approved", by="bench", at="2026-01-01T00:00:00Z"),
                                  expected_status="pending")
        registry.move_pointer("m", PRODUCTION, expected=None, new="v1", actor="bench")

        def promote_v2():  # untimed: each timed rollback moves v2 -> v1, so the history grows by 2 a round
            registry.move_pointer("m", PRODUCTION, expected="v1", new="v2", actor="bench")
        key = f"{prefix}/models/m/production/version.txt"
        bare_client = server.client()

        def bare_once():
            current = bare_client.get_object(Bucket=BUCKET, Key=key)
            old = current["Body"].read().decode()
            bare_client.put_object(Bucket=BUCKET, Key=key, Body=(b"v1" if old == "v2" else b"v2"),
                                   IfMatch=current["ETag"])

        mrc_times, bare_times = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine load
            promote_v2()
            started = time.perf_counter()
            done = rollback(registry, audit, "m", actor="bench")
            mrc_times.append(time.perf_counter() - started)
            assert done.changed and done.version == "v1", done.detail
            # put the bucket back where mrc left it after the bare write (two bare writes: net zero)
            started = time.perf_counter()
            bare_once()
            bare_times.append(time.perf_counter() - started)
            bare_once()
        # The bare writes above went behind mrc's back (they show as moves outside mrc): fine here.
        print(f"SeaweedFS {server.endpoint}, {args.repeat} rollbacks each, interleaved")
        print(f"  in-process  mrc rollback (S3)      {stats(mrc_times)}")
        print(f"  in-process  bare boto3 GET+PUT     {stats(bare_times)}")
        print(f"  ratio mrc / bare (median)          {statistics.median(mrc_times) / statistics.median(bare_times):5.1f}x")

        bare_script = work / "bare_rollback.py"
        bare_script.write_text(BARE)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cli_times, script_times = [], []
        for _ in range(args.processes):
            promote_v2()
            started = time.perf_counter()
            cli = subprocess.run([sys.executable, "-m", "console.cli", "rollback", "m", "--workspace", str(root)],
                                 capture_output=True, text=True, env=env, cwd=str(REPO))
            cli_times.append(time.perf_counter() - started)
            assert cli.returncode == 0, cli.stderr
            started = time.perf_counter()
            bare = subprocess.run([sys.executable, str(bare_script), server.endpoint, BUCKET, key],
                                  capture_output=True, text=True, env=env)
            script_times.append(time.perf_counter() - started)
            assert bare.returncode == 0, bare.stderr
            subprocess.run([sys.executable, str(bare_script), server.endpoint, BUCKET, key], capture_output=True, env=env)
        print(f"  process     mrc rollback           {stats(cli_times)}")
        print(f"  process     bare boto3 script      {stats(script_times)}")
        print(f"  ratio mrc / bare (median)          {statistics.median(cli_times) / statistics.median(script_times):5.2f}x")

        # mrc beside the script making the same 15 requests (mrc's own moves: it writes real events)
        same_script = work / "bare_same_reads.py"
        same_script.write_text(BARE_SAME)
        cli_times, same_times = [], []
        for _ in range(args.processes):
            promote_v2()
            started = time.perf_counter()
            cli = subprocess.run([sys.executable, "-m", "console.cli", "rollback", "m", "--workspace", str(root)],
                                 capture_output=True, text=True, env=env, cwd=str(REPO))
            cli_times.append(time.perf_counter() - started)
            assert cli.returncode == 0, cli.stderr
            promote_v2()
            started = time.perf_counter()
            same = subprocess.run([sys.executable, str(same_script), server.endpoint, BUCKET, prefix],
                                  capture_output=True, text=True, env=env)
            same_times.append(time.perf_counter() - started)
            assert same.returncode == 0 and same.stdout.strip() == "v2 -> v1", same.stdout + same.stderr
        print(f"  process     mrc rollback           {stats(cli_times)}")
        print(f"  process     same 15 requests bare  {stats(same_times)}")
        print(f"  ratio mrc / same-reads (median)    {statistics.median(cli_times) / statistics.median(same_times):5.2f}x")

        from console.release.actions import HISTORY_WINDOW

        print(f"  (production history at the end: {len(registry.pointer_history('m', PRODUCTION))} moves; "
              f"a rollback reads only the newest {HISTORY_WINDOW} event objects unless none of their versions fits)")

        # Requests one rollback sends, counted by a proxy in front of SeaweedFS (same long history).
        proxy = servers.FaultProxy(server.endpoint)
        counted = S3Registry(BUCKET, prefix=prefix, endpoint_url=proxy.url)
        promote_v2()
        rollback(counted, audit, "m", actor="bench")
        history_gets = proxy.count("GET", "/history/")  # a LIST names its prefix url-encoded
        model_gets = proxy.count("GET", "/model.pt")
        print(f"  requests in one rollback: {len(proxy.seen)} ({history_gets} event-object GETs, "
              f"{model_gets} artifact downloads); the bare script: 2 (GET + conditional PUT)")
        proxy.stop()

        # What the server does with racing conditional writes: 20 connections, one per writer.
        import boto3
        from botocore.config import Config

        race_client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(
            s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, max_pool_connections=32))

        def race(trials: int, conditional: str) -> int:
            more_than_one = 0
            for trial in range(trials):
                race_key = f"race/{conditional}/{trial}"
                if conditional == "IfMatch":
                    etag = race_client.put_object(Bucket=BUCKET, Key=race_key, Body=b"start")["ETag"]

                def put(i):
                    extra = {"IfMatch": etag} if conditional == "IfMatch" else {"IfNoneMatch": "*"}
                    try:
                        body = f"{race_key} writer {i}".encode()  # unique bytes: an equal body keeps the ETag
                        race_client.put_object(Bucket=BUCKET, Key=race_key, Body=body, **extra)
                        return 1
                    except race_client.exceptions.ClientError:
                        return 0

                with cf.ThreadPoolExecutor(20) as pool:
                    winners = sum(pool.map(put, range(20)))
                more_than_one += winners > 1
            return more_than_one

        for conditional in ("IfMatch", "IfNoneMatch"):
            bad = race(args.race_trials, conditional)
            print(f"  SeaweedFS {conditional:11s}: {bad}/{args.race_trials} trials of 20 racing writers had "
                  f"more than one winner")
        # ETags are MD5s of the bytes: v1 -> v2 -> v1 gives back the first ETag, so If-Match alone
        # cannot see that the pointer moved twice meanwhile (ABA). The event claim can.
        first = race_client.put_object(Bucket=BUCKET, Key="aba/version.txt", Body=b"v1")["ETag"]
        race_client.put_object(Bucket=BUCKET, Key="aba/version.txt", Body=b"v2")
        race_client.put_object(Bucket=BUCKET, Key="aba/version.txt", Body=b"v1")
        try:
            race_client.put_object(Bucket=BUCKET, Key="aba/version.txt", Body=b"v3", IfMatch=first)
            print("  ABA: If-Match on the ETag read before v1 -> v2 -> v1 still succeeds (ETag = MD5 of the bytes)")
        except race_client.exceptions.ClientError:
            print("  ABA: If-Match on the ETag read before v1 -> v2 -> v1 is refused")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
