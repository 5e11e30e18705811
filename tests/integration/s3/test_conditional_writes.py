"""What SeaweedFS really does with conditional PutObject: the S3 registry relies on exactly this."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from backends.s3.registry import S3Registry, _PreconditionFailed
from tests.support.remote import BUCKET, unique

pytestmark = pytest.mark.integration  # starts real servers on 127.0.0.1


@pytest.fixture
def registry(s3_server):
    return S3Registry(BUCKET, prefix=unique("cond"), endpoint_url=s3_server.endpoint, retries=2, retry_base_s=0.05)


def test_if_none_match_refuses_an_existing_key_and_if_match_a_stale_etag(registry):
    key = registry.prefix + "pointer"
    first = registry._put(key, b"v1", if_none_match=True)
    with pytest.raises(_PreconditionFailed):
        registry._put(key, b"v2", if_none_match=True)
    registry._put(key, b"v2", if_match=first)
    with pytest.raises(_PreconditionFailed):
        registry._put(key, b"v3", if_match=first)  # stale: someone wrote since
    assert registry._get(key)[0] == b"v2"


def test_if_match_on_a_missing_key_is_a_failed_precondition(registry):
    with pytest.raises(_PreconditionFailed):
        registry._put(registry.prefix + "never-written", b"v1", if_match='"0123456789abcdef0123456789abcdef"')
    assert registry._get(registry.prefix + "never-written") is None


@pytest.mark.parametrize("conditional", ["IfNoneMatch", "IfMatch"])
def test_racing_conditional_writes_have_exactly_one_winner(registry, conditional):
    from botocore.config import Config

    import boto3

    racer = boto3.client("s3", endpoint_url=registry.endpoint_url, region_name="us-east-1", config=Config(
        s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, max_pool_connections=32))
    for trial in range(5):
        key = registry.prefix + f"race-{conditional}-{trial}"
        etag = racer.put_object(Bucket=BUCKET, Key=key, Body=b"start")["ETag"] if conditional == "IfMatch" else None

        def put(i):
            extra = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:  # distinct bytes per writer: equal bytes would keep the ETag and legitimately match again
                racer.put_object(Bucket=BUCKET, Key=key, Body=f"{key} writer {i}".encode(), **extra)
                return i
            except racer.exceptions.ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
                return None

        with cf.ThreadPoolExecutor(20) as pool:
            winners = [i for i in pool.map(put, range(20)) if i is not None]
        assert len(winners) == 1
        assert racer.get_object(Bucket=BUCKET, Key=key)["Body"].read() == f"{key} writer {winners[0]}".encode()
