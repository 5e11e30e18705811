"""The monitor's S3 source: prediction and label records in JSON-lines or Parquet objects under a
time-partitioned prefix (`prefix/dt=2026-12-08/hour=01/part-0003.jsonl`, or any layout whose keys
sort in the order they were written).

    [monitor]
    source = "s3"
    options = { bucket = "logs", prefix = "predictions/credit/", endpoint_url = "http://…" }

The cursor is the last key read to its end: objects are immutable once written, so a read lists
the keys after it (S3's StartAfter) and folds each new object once. An object written later under
a key that sorts before the cursor is not seen: writers must name objects in time order, as
partitioned writers (Firehose, Spark, KServe's logger sinks) do. An object of another type, or a
line that is not JSON, is counted in `bad`; a bucket that does not exist is one line naming it.
"""

from __future__ import annotations

import io
import json
from typing import Any

from backends.base import BackendError, BadInputError, FieldMapping, SourceBatch
from backends.support.prediction_records import batch_from_records

JSON_LINES = (".jsonl", ".json", ".ndjson")
PARQUET = (".parquet",)


class S3LogSource:
    name = "s3"

    def __init__(self) -> None:
        self.mapping = FieldMapping()
        self.bucket = self.prefix = ""
        self.client_options: dict[str, Any] = {}
        self._client = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def open(self, ws_root: str, model: str, mapping: FieldMapping, options: dict[str, Any]) -> None:
        self.mapping = mapping
        bucket, prefix = options.get("bucket"), options.get("prefix", "")
        if not isinstance(bucket, str) or not bucket.strip():
            raise BadInputError("monitor.options.bucket: the S3 bucket (a string) is required with source = \"s3\"")
        if not isinstance(prefix, str):
            raise BadInputError("monitor.options.prefix: a key prefix (a string)")
        self.bucket, self.prefix = bucket.strip(), prefix
        self.client_options = {k: options[k] for k in ("endpoint_url", "region") if isinstance(options.get(k), str)}

    def _s3(self):
        if self._client is None:
            import boto3  # boto3: ~0.15 s, only with an S3 source
            from botocore.config import Config

            kwargs: dict[str, Any] = {"config": Config(retries={"max_attempts": 3, "mode": "standard"},
                                                       connect_timeout=10, read_timeout=60)}
            if "endpoint_url" in self.client_options:
                kwargs["endpoint_url"] = self.client_options["endpoint_url"]
            if "region" in self.client_options:
                kwargs["region_name"] = self.client_options["region"]
            self._client = boto3.client("s3", **kwargs)
        return self._client

    def _call(self, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "404"):
                raise BadInputError(f"monitor.options.bucket: {self.where}: the bucket does not exist") from None
            raise BackendError(f"{self.where}: {code or exc}") from None
        except BotoCoreError as exc:
            raise BackendError(f"{self.where}: {exc}") from None

    def read(self, cursor: dict[str, Any] | None, max_records: int = 200_000) -> SourceBatch:
        after = str((cursor or {}).get("key") or "")
        s3 = self._s3()
        listing = self._call(s3.list_objects_v2, Bucket=self.bucket, Prefix=self.prefix,
                             **({"StartAfter": after} if after else {}))
        records: list[Any] = []
        bad: dict[str, int] = {}
        last = after
        for item in sorted(listing.get("Contents") or [], key=lambda o: o["Key"]):
            key = item["Key"]
            if key.endswith("/"):
                last = key
                continue
            lower = key.lower()
            if not lower.endswith(JSON_LINES + PARQUET):
                what = f"s3://{self.bucket}/{self.prefix}: object: not JSON lines or Parquet"
                bad[what] = bad.get(what, 0) + 1
                last = key
                continue
            body = self._call(s3.get_object, Bucket=self.bucket, Key=key)["Body"].read()
            if lower.endswith(PARQUET):
                try:
                    import pyarrow.parquet as pq  # pyarrow: ~0.2 s, only for Parquet objects

                    records.extend(pq.read_table(io.BytesIO(body)).to_pylist())
                except Exception:  # noqa: BLE001  (a torn or foreign file: counted, never fatal)
                    what = f"s3://{self.bucket}/{key}: object: not readable Parquet"
                    bad[what] = bad.get(what, 0) + 1
            else:
                for line in body.splitlines():
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        what = f"{self.where}: record: not JSON"
                        bad[what] = bad.get(what, 0) + 1
            last = key
            if len(records) >= max_records:
                break
        batch = batch_from_records(records, self.mapping, self.where)
        for what, n in bad.items():
            batch.bad[what] = batch.bad.get(what, 0) + n
        batch.cursor = {"key": last}
        return batch
