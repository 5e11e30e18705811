"""What an S3 rollback reads (issue 11, speed): the requests it sends, counted by a botocore
event hook on the registry's own client against the real SeaweedFS, and the integrity check that
lets it skip downloading the artifact — which must still catch bytes changed behind mrc's back."""

from __future__ import annotations

import hashlib
import json

import pytest

from backends.base import PRODUCTION, Approval, IntegrityError, Lineage
from console.release.actions import HISTORY_WINDOW, _production_now, rollback


class _Audit:
    """An audit sink without intents (console/release/actions.py's fakes path): only S3 is counted."""

    def __init__(self):
        self.events = []

    def append(self, *event):
        self.events.append(event)


def _requests(registry) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    registry.client.meta.events.register(
        "before-call.s3", lambda params, model, **_: seen.append((model.name, params.get("url_path", ""))))
    return seen


def _released(registry, tmp_path, versions=("v1", "v2", "v3"), moves=6):
    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"weights of the model " * 500)
    for v in versions:
        registry.register_version("m", str(artifact), metrics={"auc_roc": 0.9}, lineage=Lineage(), version=v)
        registry.set_approval("m", v, Approval("approved", "reviewer", "2026-01-01T00:00:00Z"), expected_status="pending")
    registry.move_pointer("m", PRODUCTION, expected=None, new="v1", actor="t")
    current = "v1"
    for i in range(moves):  # a history longer than the rollback's window
        new = versions[(i + 1) % len(versions)]
        registry.move_pointer("m", PRODUCTION, expected=current, new=new, actor="t")
        current = new
    return current


def test_a_rollback_reads_a_bounded_window_and_never_downloads_the_artifact(s3_workspace, tmp_path):
    _, registry = s3_workspace
    current = _released(registry, tmp_path)
    previous = registry.pointer_history("m", PRODUCTION)[-1].from_version
    seen = _requests(registry)
    done = rollback(registry, _Audit(), "m", actor="oncall")
    seen = list(seen)  # the rollback's requests only, not the checks below
    assert done.changed and done.version == previous and done.detail["from"] == current
    assert registry.get_pointers("m")[PRODUCTION] == previous
    event_gets = [key for op, key in seen if op == "GetObject" and "/history/" in key]
    model_gets = [key for op, key in seen if op == "GetObject" and key.endswith("model.pt")]
    assert model_gets == []  # the recorded MD5/ETag proved the bytes (see _verified_by_etag)
    # the window, plus the last event read again by the compare-and-swap move itself
    assert len(event_gets) == HISTORY_WINDOW + 1, seen
    assert len(seen) <= 15, seen  # it was 45 (115 before that) with the same history
    writes = [op for op, _ in seen if op in ("PutObject", "CopyObject")]
    assert writes == ["PutObject", "PutObject", "CopyObject"]  # event claim, pointer, production/metrics.json
    client = registry.client
    prefix = registry.prefix
    metrics = client.get_object(Bucket=registry.bucket, Key=f"{prefix}models/m/production/metrics.json")["Body"].read()
    assert json.loads(metrics) == {"auc_roc": 0.9}


@pytest.mark.parametrize("same_size", [True, False])
def test_bytes_rewritten_behind_mrcs_back_fail_the_check_and_the_rollback_skips_them(s3_workspace, tmp_path,
                                                                                    same_size):
    _, registry = s3_workspace
    _released(registry, tmp_path, versions=("v1", "v2"), moves=1)  # v1 -> v2: a rollback goes to v1
    key = f"{registry.prefix}models/m/versions/v1/model.pt"
    client = registry.client
    good = client.get_object(Bucket=registry.bucket, Key=key)["Body"].read()
    bad = bytes(b ^ 0x01 for b in good) if same_size else good[: len(good) // 2]
    client.put_object(Bucket=registry.bucket, Key=key, Body=bad)  # plain boto3, as an intruder would
    seen = _requests(registry)
    with pytest.raises(IntegrityError) as caught:
        registry.verify_artifact("m", "v1")
    assert key in str(caught.value) and "sha256" in str(caught.value)
    assert ("GetObject", f"/{key}") in seen  # the ETag no longer fits: the bytes were hashed
    from backends.base import BadInputError

    with pytest.raises(BadInputError) as refused:
        rollback(registry, _Audit(), "m", actor="oncall")
    assert "v1 is corrupt" in str(refused.value)
    assert registry.get_pointers("m")[PRODUCTION] == "v2"  # nothing moved


def test_a_version_without_a_recorded_md5_is_downloaded_and_hashed(s3_workspace, tmp_path):
    """Filled by a pipeline (plain boto3, sha256 only): no shortcut, the bytes are hashed."""
    _, registry = s3_workspace
    data = b"pipeline weights" * 300
    base = f"{registry.prefix}models/p/versions/v1/"
    client = registry.client
    client.put_object(Bucket=registry.bucket, Key=base + "model.pt", Body=data)
    client.put_object(Bucket=registry.bucket, Key=base + "metadata.json",
                      Body=json.dumps({"artifact": {"sha256": hashlib.sha256(data).hexdigest()}}).encode())
    seen = _requests(registry)
    assert registry.verify_artifact("p", "v1").sha256 == hashlib.sha256(data).hexdigest()
    assert ("GetObject", f"/{base}model.pt") in seen
    # a recorded md5 that the store's ETag does not match is not trusted either
    client.put_object(Bucket=registry.bucket, Key=base + "metadata.json", Body=json.dumps({"artifact": {
        "sha256": hashlib.sha256(b"other").hexdigest(), "md5": hashlib.md5(data).hexdigest(),
        "etag": "0" * 32, "size_bytes": len(data)}}).encode())
    with pytest.raises(IntegrityError):
        registry.verify_artifact("p", "v1")


def test_production_read_from_the_history_is_what_get_pointers_says(s3_workspace, tmp_path):
    """The rollback takes production from the history it read (no second round of pointer
    reads); that must agree with get_pointers, a write outside mrc included."""
    _, registry = s3_workspace
    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"w" * 100)
    for v in ("v1", "v2", "v3"):
        registry.register_version("m", str(artifact), metrics={}, lineage=Lineage(), version=v)

    def agree():
        history = registry.pointer_history("m", PRODUCTION, limit=HISTORY_WINDOW)
        assert _production_now(registry, "m", history) == registry.get_pointers("m").get(PRODUCTION)
        return _production_now(registry, "m", history)

    assert agree() is None
    registry.move_pointer("m", PRODUCTION, expected=None, new="v1", actor="t")
    registry.move_pointer("m", PRODUCTION, expected="v1", new="v2", actor="t")
    assert agree() == "v2"
    registry.client.put_object(Bucket=registry.bucket, Key=f"{registry.prefix}models/m/production/version.txt",
                               Body=b"v3")  # outside mrc
    assert agree() == "v3"


@pytest.mark.parametrize("lie", ["999", "1", "x"])
def test_a_wrong_seq_hint_on_the_pointer_changes_nothing_read(s3_workspace, tmp_path, lie):
    """The pointer's x-amz-meta-mrc-seq only says where to start listing the log: a hint that
    is too high, too low or not a number (someone rewrote the file with the plain client) gives
    the same history and the same next move as no hint at all."""
    _, registry = s3_workspace
    current = _released(registry, tmp_path)  # 7 moves, the pointer written by the 7th
    key = f"{registry.prefix}models/m/production/version.txt"
    client = registry.client
    assert client.head_object(Bucket=registry.bucket, Key=key)["Metadata"] == {"mrc-seq": "7"}
    seen = _requests(registry)
    honest = registry.pointer_history("m", PRODUCTION, limit=HISTORY_WINDOW)
    listed = [op for op, _ in seen if op == "ListObjectsV2"]
    assert [m.seq for m in honest] == list(range(8 - HISTORY_WINDOW, 8)) and len(listed) == 1

    client.put_object(Bucket=registry.bucket, Key=key, Body=current.encode(), Metadata={"mrc-seq": lie})
    assert registry.pointer_history("m", PRODUCTION, limit=HISTORY_WINDOW) == honest
    whole = registry.pointer_history("m", PRODUCTION)
    assert [m.seq for m in whole] == [1, 2, 3, 4, 5, 6, 7]
    moved = registry.move_pointer("m", PRODUCTION, expected=current, new="v2", actor="t")
    assert moved.seq == 8 and registry.get_pointers("m")[PRODUCTION] == "v2"
    assert client.head_object(Bucket=registry.bucket, Key=key)["Metadata"] == {"mrc-seq": "8"}


def test_when_the_newest_events_offer_no_fit_version_the_rollback_reads_further_back(s3_workspace, tmp_path):
    _, registry = s3_workspace
    _released(registry, tmp_path, moves=2)  # v1 -> v2 -> v3: the newest events offer v2 only
    key = f"{registry.prefix}models/m/versions/v2/model.pt"
    registry.client.put_object(Bucket=registry.bucket, Key=key, Body=b"not the registered bytes")
    done = rollback(registry, _Audit(), "m", actor="oncall")
    assert (done.detail["from"], done.version) == ("v3", "v1")
    assert [s["version"] for s in done.detail["skipped"]] == ["v2"] and "corrupt" in done.detail["skipped"][0]["why"]
    assert registry.get_pointers("m")[PRODUCTION] == "v1"
