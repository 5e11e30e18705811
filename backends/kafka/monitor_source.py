"""The monitor's Kafka source: prediction and label events, one JSON object per message.

mrc.toml:

    [monitor]
    source = "kafka"
    options = { bootstrap = "127.0.0.1:9092", topic = "predictions", group = "mrc-monitor" }

The field mapping is [monitor]'s, as for the router log (a message with no features but a label
is a label event, joined by id). Several monitors sharing `group` split the partitions (Kafka's
consumer group); each folds what it was assigned.

The cursor is the next offset per partition. It is saved with the panes (console/monitor), and
the same offsets are committed to the group, so a restart resumes where the panes end: each
record is folded once. On assignment a partition starts at the cursor's offset, else at the
group's committed offset, else at the earliest one (never "latest": a monitor must not skip
what arrived while it was down).

A read ends at the end of every assigned partition (librdkafka's partition EOF events) or after
`max_records`; the consumer then commits and leaves the group, so the next run (or another
member) is assigned at once rather than after a session timeout.

A topic that does not exist is one line naming it (the AdminClient describes it: asking for its
metadata would create it on brokers that create topics on first use).
"""

from __future__ import annotations

import json
import time
from typing import Any

from backends.base import BackendError, BadInputError, FieldMapping, SourceBatch
from backends.support.prediction_records import batch_from_records

# The group's timings: a member that died is noticed in 3 s, and a join is not held long (a
# broker holds a join for about half the session timeout). The classic protocol: the KIP-848
# one is not served by every broker (Tansu).
GROUP_SETTINGS = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300, "group.protocol": "classic"}
CONNECT_TIMEOUT_S = 30.0  # a broker that answers nothing in this long is unreachable (exit 4)
POLL_S = 0.2
QUIET_POLLS = 25  # polls in a row with no message and no EOF after the assignment: the read ends


class KafkaSource:
    name = "kafka"

    def __init__(self) -> None:
        self.mapping = FieldMapping()
        self.bootstrap = self.topic = self.group = ""
        self.consumer = None
        self.assigned: set[int] | None = None
        self.at_end: set[int] = set()
        self.position: dict[str, int] = {}
        self.drained: dict[str, int] | None = None  # the position a read found to be the end (consumer closed)
        self._start: dict[str, int] = {}

    @property
    def where(self) -> str:
        return f"kafka topic {self.topic!r} on {self.bootstrap}"

    def open(self, ws_root: str, model: str, mapping: FieldMapping, options: dict[str, Any]) -> None:
        self.mapping = mapping
        for key in ("bootstrap", "topic"):
            value = options.get(key)
            if not isinstance(value, str) or not value.strip():
                raise BadInputError(f"monitor.options.{key}: the Kafka {key} (a string) is required with source = \"kafka\"")
        self.bootstrap, self.topic = options["bootstrap"].strip(), options["topic"].strip()
        group = options.get("group", f"mrc-monitor-{model}")
        if not isinstance(group, str) or not group.strip():
            raise BadInputError("monitor.options.group: the consumer group (a string)")
        self.group = group.strip()

    # -- reading ---------------------------------------------------------------------------------
    def _check_topic(self) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicCollection  # ~40 ms: only with a Kafka source
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": int(CONNECT_TIMEOUT_S * 1000)})
        try:
            admin.describe_topics(TopicCollection([self.topic]))[self.topic].result(CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if hasattr(error, "code") else None
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BadInputError(f"monitor.options.topic: {self.where}: the topic does not exist") from None
            raise BackendError(f"{self.where}: {error}") from None
        except Exception as exc:  # noqa: BLE001  (a timeout: the broker did not answer)
            raise BackendError(f"{self.where}: no answer ({type(exc).__name__}: {exc})") from None

    def _connect(self, cursor_offsets: dict[str, int]) -> None:
        from confluent_kafka import Consumer  # ~40 ms: only with a Kafka source

        self._check_topic()
        self.consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                  "enable.partition.eof": True, **GROUP_SETTINGS})
        self._start = dict(cursor_offsets)
        self.assigned, self.at_end = None, set()
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions) -> None:
        # the cursor saved with the panes wins over the group's committed offset (they agree unless
        # a monitor stopped between committing here and saving its panes)
        for tp in partitions:
            if str(tp.partition) in self._start:
                tp.offset = int(self._start[str(tp.partition)])
        consumer.assign(partitions)
        self.assigned = {tp.partition for tp in partitions}
        self.at_end -= {tp.partition for tp in partitions}

    def _on_revoke(self, consumer, partitions) -> None:
        self._commit()
        self.assigned = set()

    def _commit(self) -> None:
        if self.consumer is None or not self.position:
            return
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(self.topic, int(p), int(o)) for p, o in self.position.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException:
            pass  # the cursor saved with the panes is the truth; the group's copy catches up next time

    def close(self) -> None:
        if self.consumer is not None:
            self._commit()
            self.consumer.close()  # LeaveGroup: the next member is assigned at once
            self.consumer = None

    def read(self, cursor: dict[str, Any] | None, max_records: int = 200_000) -> SourceBatch:
        offsets = {str(p): int(o) for p, o in ((cursor or {}).get("offsets") or {}).items()}
        if self.drained is not None and offsets == self.drained:
            return self._batch([], 0, offsets)  # this run read to the end already
        if self.consumer is None:
            self.position = dict(offsets)
            self._connect(offsets)
        elif offsets != self.position:  # another monitor folded a batch first: continue after it
            from confluent_kafka import TopicPartition

            for p, o in offsets.items():
                if self.assigned and int(p) in self.assigned:
                    self.consumer.seek(TopicPartition(self.topic, int(p), o))
            self.position.update(offsets)
        records: list[Any] = []
        unparsable = 0
        quiet = 0
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        from confluent_kafka import KafkaError

        while len(records) + unparsable < max_records:
            if self.assigned is not None and self.assigned <= self.at_end:
                break  # every assigned partition read to its end
            message = self.consumer.poll(POLL_S)
            if message is None:
                if self.assigned is None:
                    if time.monotonic() > deadline:
                        self.close()
                        raise BackendError(f"{self.where}: group {self.group!r} assigned nothing in "
                                           f"{CONNECT_TIMEOUT_S:.0f} s")
                    continue
                quiet += 1
                if quiet >= QUIET_POLLS:
                    break
                continue
            quiet = 0
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self.at_end.add(message.partition())
                    continue
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    self.close()
                    raise BadInputError(f"monitor.options.topic: {self.where}: the topic does not exist")
                if error.fatal() or not error.retriable():
                    self.close()
                    raise BackendError(f"{self.where}: {error.str()}")
                continue
            self.at_end.discard(message.partition())
            self.position[str(message.partition())] = message.offset() + 1
            try:
                records.append(json.loads(message.value() or b""))
            except (ValueError, UnicodeDecodeError):
                unparsable += 1
        self._commit()
        ended = len(records) + unparsable < max_records
        position = dict(self.position)
        if ended:
            self.close()
            self.drained = position
        return self._batch(records, unparsable, position)

    def _batch(self, records: list[Any], unparsable: int, position: dict[str, int]) -> SourceBatch:
        batch = batch_from_records(records, self.mapping, self.where)
        if unparsable:
            key = f"{self.where}: record: not JSON"
            batch.bad[key] = batch.bad.get(key, 0) + unparsable
        batch.cursor = {"topic": self.topic, "offsets": dict(sorted(position.items()))}
        return batch
