#!/usr/bin/env bash
# Consumer-group basics that scale-out builds on, against the real broker
# with the librdkafka sluice links (through Debian's confluent-kafka):
# members of one group with the cooperative-sticky assignor share a topic's
# partitions; a second member joining takes partitions from the first
# incrementally (the first keeps the rest and never loses everything), and
# when it leaves, the first gets them back, again incrementally. Every
# record is read once by the group across the moves when offsets are
# committed before a partition is given up.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
tag=it-real-group-$$
create_topic "$tag" 4
/usr/bin/python3 - "$BROKERS" "$tag" <<'PY' || fail "consumer-group basics"
import sys, time
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

brokers, topic = sys.argv[1:3]
p = Producer({"bootstrap.servers": brokers})
for i in range(400):
    p.produce(topic, str(i), partition=i % 4)
p.flush(30)


def fail(msg):
    sys.exit("FAIL: " + msg)


class Member:
    def __init__(self, name):
        self.name, self.owned, self.events = name, set(), []
        self.seen = []
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": topic + "-g",
                           "partition.assignment.strategy": "cooperative-sticky",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
        self.c.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                         on_lost=self.on_lost)

    def on_assign(self, c, parts):
        got = {tp.partition for tp in parts}
        self.events.append(("assign", sorted(got)))
        self.owned |= got

    def on_revoke(self, c, parts):
        lost = {tp.partition for tp in parts}
        self.events.append(("revoke", sorted(lost)))
        if lost:
            try:
                c.commit(asynchronous=False)  # what it read stays read
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    raise
        self.owned -= lost

    def on_lost(self, c, parts):
        fail("%s lost %s: %s" % (self.name, [tp.partition for tp in parts], self.events))

    def poll(self):
        m = self.c.poll(0.1)
        if m is not None and not m.error():
            self.seen.append(int(m.value()))  # its offset is stored at once


def until(what, cond, members, limit=120):
    end = time.monotonic() + limit  # a bound on a condition, not a timing
    while not cond():
        if time.monotonic() > end:
            fail("not within %d s: %s; %s" % (limit, what,
                 "; ".join("%s owns %s, events %s" % (m.name, sorted(m.owned), m.events)
                           for m in members)))
        for m in members:
            m.poll()


a = Member("A")
until("A owns all 4 partitions", lambda: a.owned == {0, 1, 2, 3}, [a])
b = Member("B")
until("A and B own 2 each", lambda: len(a.owned) == 2 and len(b.owned) == 2
      and not (a.owned & b.owned), [a, b])
moved = set(b.owned)
revokes = [e for e in a.events if e[0] == "revoke" and e[1]]
if [sorted(moved)] != [e[1] for e in revokes]:
    fail("A should have given up exactly B's partitions %s, once: %s" % (sorted(moved), a.events))
if any(e[0] == "assign" and set(e[1]) == {0, 1, 2, 3} for e in a.events[1:]):
    fail("A was reassigned everything: an eager rebalance")
until("everything read", lambda: len(set(a.seen) | set(b.seen)) == 400, [a, b])
b.c.close()
until("A owns all 4 again", lambda: a.owned == {0, 1, 2, 3}, [a])
last = a.events[-1]
if last != ("assign", sorted(moved)):
    fail("A's last event should be the incremental assignment of %s: %s" % (sorted(moved), a.events))
a.c.close()
twice = len(a.seen) + len(b.seen) - len(set(a.seen) | set(b.seen))
if twice:
    fail("%d records read twice across the move, though A committed before giving up" % twice)
print("ok: cooperative-sticky: A %s, B took %s and gave them back; 400 records read, %d twice"
      % (a.events, sorted(moved), twice))
PY
echo "ok: consumer-group basics on the real broker"
