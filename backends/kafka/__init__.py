"""Kafka: the monitor's prediction and label events from a topic (confluent-kafka, the `kafka` extra)."""
