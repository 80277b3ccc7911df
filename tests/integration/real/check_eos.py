#!/usr/bin/python3
"""Checks an exactly-once Kafka sink's output on a real broker, read the way
a user reads it: a read_committed consumer, no sluice headers.

usage: check_eos.py output BROKERS TOPIC RECORDS.jsonl
         every committed record of TOPIC is one of the rows the stateless
         crash-matrix job (tests/integration/crash/matrix.sh) makes of
         RECORDS, keyed by its user, and every such row is there exactly once
       check_eos.py atleast BROKERS TOPIC RECORDS.jsonl
         the same rows, each at least once (an at-least-once sink: rows
         written again after a partition moved are counted, not refused)
       check_eos.py offsets BROKERS GROUP TOPIC
         GROUP's committed offsets of every partition of TOPIC (stored by
         the sink's transactions) equal the partitions' end offsets
"""
import collections
import json
import os
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from kafka_settled import wait_settled  # noqa: E402


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def canon(row):
    return json.dumps(row, sort_keys=True)


def expected(path):
    rows = []
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            if r["id"] % 10 != 7:
                cents = int(r["amount"] * 100 + 0.5)
                rows.append(canon({"id": r["id"], "user": r["user"], "cents": cents}))
    return collections.Counter(rows)


def consumer(brokers, group):
    return Consumer({"bootstrap.servers": brokers, "group.id": group,
                     "isolation.level": "read_committed", "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "enable.partition.eof": True})


def partitions(c, topic):
    md = c.list_topics(topic, timeout=30).topics[topic]
    if md.error:
        fail("topic %s: %s" % (topic, md.error))
    return sorted(md.partitions)


def read_committed(brokers, topic):
    msg = wait_settled(brokers, topic)
    if msg:
        fail(msg)
    c = consumer(brokers, "check-eos-reader")
    parts = partitions(c, topic)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    done, got = set(), collections.Counter()
    while len(done) < len(parts):
        m = c.poll(30)
        if m is None:
            fail("no message nor end of partition within 30 s (an open transaction?)")
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                done.add(m.partition())
                continue
            fail("consumer: %s" % m.error())
        r = json.loads(m.value())
        if m.key().decode() != r["user"]:
            fail("record %s has key %r" % (m.value(), m.key()))
        got[canon(r)] += 1
    c.close()
    return got


def main():
    verb, brokers = sys.argv[1:3]
    if verb == "output":
        topic, records = sys.argv[3:5]
        want, got = expected(records), read_committed(brokers, topic)
        twice = [r for r, n in got.items() if n > 1]
        missing = [r for r in want if r not in got]
        extra = [r for r in got if r not in want]
        if twice:
            fail("%d rows committed more than once, e.g. %s" % (len(twice), twice[0]))
        if missing:
            fail("%d rows missing, e.g. %s" % (len(missing), missing[0]))
        if extra:
            fail("%d rows not made from the input, e.g. %s" % (len(extra), extra[0]))
        print("ok: %d rows, each exactly once (read_committed)" % sum(got.values()))
    elif verb == "atleast":
        topic, records = sys.argv[3:5]
        want, got = expected(records), read_committed(brokers, topic)
        missing = [r for r in want if r not in got]
        extra = [r for r in got if r not in want]
        if missing:
            fail("%d rows missing, e.g. %s" % (len(missing), missing[0]))
        if extra:
            fail("%d rows not made from the input, e.g. %s" % (len(extra), extra[0]))
        again = sum(got.values()) - len(want)
        print("ok: %d rows, each at least once (%d written again)" % (len(want), again))
    elif verb == "offsets":
        group, topic = sys.argv[3:5]
        c = consumer(brokers, group)
        parts = [TopicPartition(topic, p) for p in partitions(c, topic)]
        try:
            committed = c.committed(parts, timeout=30)
        except KafkaException as e:
            fail("committed offsets of %s: %s" % (group, e))
        for tp in committed:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
            if tp.offset != hi:
                fail("group %s: %s[%d] committed %d, the partition ends at %d"
                     % (group, topic, tp.partition, tp.offset, hi))
        c.close()
        print("ok: group %s committed the end of every partition of %s" % (group, topic))
    else:
        fail("unknown verb " + verb)


main()
