"""Kafka for tradeops: a real local broker, the topics, and a producer that waits for confirmation.

- ``tradeops.kafka.broker``: install (Maven), start, stop and probe a single-node KRaft broker,
  or use an external one named by ``KAFKA_BOOTSTRAP_SERVERS``.
- ``tradeops.kafka.topics``: create the event topics and the dead-letter topic (idempotent).
- ``tradeops.kafka.producer``: publish validated events (``tradeops.events``) and dead letters;
  raises ``DeliveryError`` unless the broker confirmed the write.
"""
