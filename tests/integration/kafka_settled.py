#!/usr/bin/python3
"""Waits until no transaction on a topic is still being completed.

usage: kafka_settled.py BROKERS TOPIC [SECONDS]

A transaction's commit_transaction returns once its coordinator has logged
the decision; the commit markers reach the partitions after that. Until
they do, a partition's last stable offset (LSO) is below its high
watermark, and a read_committed consumer that stops at the end of the
partition (kcat -e) stops at the LSO and misses the transaction's records.
A check that reads a sink's output as a user does therefore first waits
until every partition's LSO (a read_committed ListOffsets) equals its high
watermark (a read_uncommitted one). Fails after SECONDS (default 60), and
says which partitions are still open: a transaction nobody completes keeps
them so until the broker aborts it.
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def _consumer(brokers, isolation):
    return Consumer({"bootstrap.servers": brokers, "group.id": "sluice-settled",
                     "isolation.level": isolation, "enable.auto.commit": False})


def open_partitions(brokers, topic, committed=None, uncommitted=None):
    """The partitions of TOPIC whose LSO is below the high watermark, as
    (partition, lso, high) tuples."""
    rc = committed or _consumer(brokers, "read_committed")
    ru = uncommitted or _consumer(brokers, "read_uncommitted")
    md = ru.list_topics(topic, timeout=30).topics[topic]
    if md.error:
        raise RuntimeError("topic %s: %s" % (topic, md.error))
    out = []
    for p in sorted(md.partitions):
        tp = TopicPartition(topic, p)
        lso = rc.get_watermark_offsets(tp, timeout=30, cached=False)[1]
        high = ru.get_watermark_offsets(tp, timeout=30, cached=False)[1]
        if lso < high:
            out.append((p, lso, high))
    return out


def wait_settled(brokers, topic, seconds=60.0):
    """Polls every 20 ms until no partition of TOPIC is open; returns None,
    or after SECONDS a message naming the partitions still open."""
    rc = _consumer(brokers, "read_committed")
    ru = _consumer(brokers, "read_uncommitted")
    try:
        deadline = time.monotonic() + seconds
        while True:
            left = open_partitions(brokers, topic, rc, ru)
            if not left:
                return None
            if time.monotonic() >= deadline:
                return "%s: after %.0f s, partitions still below their high " \
                       "watermark (partition, last stable offset, high): %s" % (
                           topic, seconds, left)
            time.sleep(0.02)
    finally:
        rc.close()
        ru.close()


def main():
    brokers, topic = sys.argv[1:3]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    msg = wait_settled(brokers, topic, seconds)
    if msg:
        print("FAIL: " + msg, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
