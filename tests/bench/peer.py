#!/usr/bin/python3
"""The Python peer of the benchmarks: the consumer loop a user writes by
hand with confluent-kafka instead of running sluice.

    peer.py w1 BROKERS TOPIC OUT_FILE
    peer.py w2 BROKERS TOPIC REDIS_URL WATERMARK_MS

w1 does W1's work: parse each value as JSON, keep event == "buy", write
{"user", "amount"} as a line of OUT_FILE. w2 does W2's: sum(amount) and
count() per user in tumbling 10 s windows of the ts field, then writes the
windows that end at or before the last event time minus WATERMARK_MS
(what an append-mode job has closed when it stops) to Redis as
HSET w2:<window_start>:<user> total <sum> orders <count>, pipelined.

Both read every partition from its low to its high watermark with
absolute offsets (as the C consumer of W0 does) and the batch consume
call, which is the fast path of confluent-kafka. Prints one JSON object:
records read, records out.
"""
import json
import sys

from confluent_kafka import Consumer, TopicPartition

WINDOW_MS = 10_000


def read_all(brokers, topic):
    """Yields lists of message values until every partition is read up to
    the high watermark it had at start."""
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "bench-peer",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 10,
        # Large local queues: librdkafka 2.0 stops fetching for a whole
        # second once a queue reaches its limit (the stock 64 MB limit
        # made this loop wait 11 of its 17 s).
        "queued.min.messages": 10000000,
        "queued.max.messages.kbytes": 2097151,
    })
    md = c.list_topics(topic, timeout=10)
    parts, left = [], {}
    for p in md.topics[topic].partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if hi > lo:
            parts.append(TopicPartition(topic, p, lo))
            left[p] = hi
    c.assign(parts)
    while left:
        msgs = c.consume(num_messages=10000, timeout=1.0)
        values = []
        for m in msgs:
            if m.error():
                raise SystemExit("peer: %s" % m.error())
            p = m.partition()
            if p not in left:
                continue
            values.append(m.value())
            if m.offset() + 1 >= left[p]:
                del left[p]
        yield values
    c.close()


def w1(brokers, topic, out_path):
    n_in = n_out = 0
    with open(out_path, "w") as out:
        for values in read_all(brokers, topic):
            n_in += len(values)
            lines = []
            for v in values:
                r = json.loads(v)
                if r.get("event") == "buy":
                    lines.append(json.dumps(
                        {"user": r.get("user"), "amount": r.get("amount")},
                        separators=(",", ":")))
            if lines:
                out.write("\n".join(lines))
                out.write("\n")
                n_out += len(lines)
    return n_in, n_out


def w2(brokers, topic, redis_url, watermark_ms):
    import redis
    windows = {}
    n_in = 0
    max_ts = None
    for values in read_all(brokers, topic):
        n_in += len(values)
        for v in values:
            r = json.loads(v)
            ts = r["ts"]
            key = (ts - ts % WINDOW_MS, r["user"])
            acc = windows.get(key)
            if acc is None:
                windows[key] = [r["amount"], 1]
            else:
                acc[0] += r["amount"]
                acc[1] += 1
            if max_ts is None or ts > max_ts:
                max_ts = ts
    closed = (max_ts if max_ts is not None else 0) - watermark_ms
    db = redis.Redis.from_url(redis_url)
    pipe = db.pipeline(transaction=False)
    n_out = 0
    for (start, user), (total, count) in windows.items():
        if start + WINDOW_MS > closed:
            continue
        pipe.hset("w2:%d:%s" % (start, user),
                  mapping={"total": repr(total), "orders": count})
        n_out += 1
        if n_out % 10000 == 0:
            pipe.execute()
    pipe.execute()
    return n_in, n_out


def main(argv):
    if len(argv) >= 5 and argv[1] == "w1":
        n_in, n_out = w1(argv[2], argv[3], argv[4])
    elif len(argv) >= 6 and argv[1] == "w2":
        n_in, n_out = w2(argv[2], argv[3], argv[4], int(argv[5]))
    else:
        sys.exit(__doc__)
    print(json.dumps({"records": n_in, "out": n_out}))


if __name__ == "__main__":
    main(sys.argv)
