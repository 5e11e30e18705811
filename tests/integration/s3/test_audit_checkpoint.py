"""`mrc audit checkpoint --to s3://…` on a real SeaweedFS: written once (If-None-Match), and
`verify --to` still catches a truncated log after the local checkpoints file is deleted."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support.cli import run_mrc
from tests.support.remote import BUCKET, _remote_credentials, remote_env, s3_server, unique  # noqa: F401

pytestmark = pytest.mark.integration


def test_checkpoint_to_s3_is_write_once_and_survives_a_deleted_local_file(demo_ws, s3_server):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    (demo_ws / "mrc.toml").write_text(f'[audit]\nendpoint_url = "{s3_server.endpoint}"\n')
    where = f"s3://{BUCKET}/{unique('audit')}"
    env = remote_env()
    ws = ["--workspace", str(demo_ws)]
    made = run_mrc("audit", "checkpoint", "--to", where, "--json", *ws, env=env)
    assert made.returncode == 0, made.stderr
    key = made.json()["remote"].removeprefix(f"s3://{BUCKET}/")
    client = boto3.session.Session().client("s3", endpoint_url=s3_server.endpoint,
                                            config=Config(s3={"addressing_style": "path"}))
    with pytest.raises(ClientError) as refused:  # write-once: an overwrite is refused
        client.put_object(Bucket=BUCKET, Key=key, Body=b"{}", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] in (409, 412)
    assert run_mrc("audit", "verify", "--to", where, *ws, env=env).returncode == 0

    (demo_ws / "audit-checkpoints.jsonl").unlink()  # the local anchor removed along with the tail
    conn = sqlite3.connect(demo_ws / "mrc.db")
    conn.execute("DELETE FROM audit_events WHERE seq > 10")
    conn.commit()
    conn.close()
    local = run_mrc("audit", "verify", "--json", *ws, env=env).json()
    assert local["chain_ok"] and not [p for p in local["problems"] if "checkpoint" in p]  # no local anchor left …
    result = run_mrc("audit", "verify", "--to", where, "--json", *ws, env=env)
    assert result.returncode == 1  # … the write-once copy does
    assert any(p.startswith(f"{where}: checkpoint 1") and "truncated" in p for p in result.json()["problems"])
