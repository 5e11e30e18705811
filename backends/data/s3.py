"""s3://bucket/key.csv|tsv|parquet on the configured endpoint (the `[data]` table's endpoint_url,
else the s3 registry's), credentials from the usual AWS chain. The object is downloaded to a
temporary file, read by FileSource, and the file removed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from backends.base import BadInputError, Table
from backends.data.files import PARQUET, TEXT, frame_to_table, read_frame


def parse_uri(ref: str) -> tuple[str, str]:
    parsed = urlparse(ref)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme.lower() != "s3" or not bucket or not key or key.endswith("/"):
        raise BadInputError(f"{ref}: expected s3://bucket/key.csv or .parquet")
    return bucket, key


class S3Source:
    def load(self, ref: str, options: dict[str, Any]) -> Table:
        bucket, key = parse_uri(ref)
        suffix = Path(key).suffix.lower()
        if suffix not in PARQUET and suffix not in TEXT:
            raise BadInputError(f"{ref}: unknown data file type {suffix or '(none)'!r} (.csv, .tsv or .parquet)")
        try:
            import boto3  # boto3: ~0.15 s
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise BadInputError(f"{ref}: reading s3:// needs boto3, which is not installed") from None
        kwargs: dict[str, Any] = {"config": Config(retries={"max_attempts": 3, "mode": "standard"},
                                                   connect_timeout=10, read_timeout=60)}
        if options.get("endpoint_url"):
            kwargs["endpoint_url"] = options["endpoint_url"]
        if options.get("region"):
            kwargs["region_name"] = options["region"]
        client = boto3.client("s3", **kwargs)
        with tempfile.TemporaryDirectory(prefix="mrc-data-") as tmp:
            local = Path(tmp) / f"object{suffix}"
            try:
                client.download_file(bucket, key, str(local))
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                what = "no such object" if code in ("404", "NoSuchKey", "NoSuchBucket") else f"cannot read ({code or exc})"
                raise BadInputError(f"{ref}: {what}") from None
            except BotoCoreError as exc:
                raise BadInputError(f"{ref}: cannot read ({exc})") from None
            return frame_to_table(read_frame(local, ref), ref)
