#!/usr/bin/python3
"""What a crash-matrix job committed, in a canonical form, and what it
should have committed, computed from the input records alone.

usage: output.py dump SINK KIND WHERE...    the committed output, batch by batch
       output.py final SINK KIND WHERE...   its final content
       output.py expect SINK KIND RECORDS.jsonl

SINK is file, redis or kafka, KIND stateless, windowed or merge (Redis). WHERE is
  file:  the sink's directory (only manifest-listed files count);
  kafka: the output topic as read by kcat -f '%h\\t%k\\t%s\\n', then the
         checkpoint directory (commits/N names the committed attempt);
  kafka-committed: the output topic as a user reads it from a real broker,
         kcat -X isolation.level=read_committed -f '%p\\t%k\\t%s\\n' (no
         headers: `dump` gives each partition's rows as a sorted multiset);
  redis: the server's port (every key but the sluice:* ones).

`dump` prints every committed batch's rows, sorted within the batch, so two
runs compare equal only if each batch committed the same rows once. `final`
and `expect` print the content a reader ends with: for a stateless job
every row, for a windowed job (update mode) the last value of every window,
for Redis the keys. Both must be equal; the comparison is left to cmp.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from check_file_sink import unseal  # noqa: E402

WINDOW_MS = 10000


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def file_batches(out):
    mdir = os.path.join(out, "_manifest")
    batches = sorted(int(n) for n in os.listdir(mdir) if n.isdigit())
    if batches != list(range(1, len(batches) + 1)):
        fail("manifest batches are not 1..%d: %s" % (len(batches), batches))
    for b in batches:
        rows = []
        for f in unseal(os.path.join(mdir, str(b)))["files"]:
            lines = open(os.path.join(out, f["name"])).read().splitlines()
            if len(lines) != f["records"]:
                fail("%s: %d lines, manifest says %d" % (f["name"], len(lines), f["records"]))
            rows += [json.loads(x) for x in lines]
        yield b, rows


def kafka_batches(tsv, ckpt):
    notes = {}
    cdir = os.path.join(ckpt, "commits")
    for name in os.listdir(cdir):
        if name.isdigit():
            text = open(os.path.join(cdir, name)).read()
            c = json.loads(text[: text.rindex("#sluice-checksum")])
            notes[c["batch"]] = c.get("sink", "")
    groups = collections.defaultdict(list)
    for line in open(tsv, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        hdrs, key, value = line.split("\t", 2)
        h = dict(kv.split("=", 1) for kv in hdrs.split(",") if "=" in kv)
        groups[(int(h["sluice.batch"]), h["sluice.attempt"])].append((key, value))
    for b in sorted(notes):
        rows = []
        for key, value in groups.get((b, notes[b]), []):
            r = json.loads(value)
            if key != r["user"]:
                fail("record %s has key %r" % (value, key))
            rows.append(r)
        yield b, rows


def kafka_committed(tsv):
    """Each partition's rows in log order, each checked against its key."""
    parts = collections.defaultdict(list)
    for line in open(tsv, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        part, key, value = line.split("\t", 2)
        r = json.loads(value)
        if key != r["user"]:
            fail("record %s has key %r" % (value, key))
        parts[int(part)].append(r)
    return parts


def redis_keys(port):
    import redis

    r = redis.Redis(host="127.0.0.1", port=int(port), decode_responses=True)
    out = {}
    for k in sorted(r.scan_iter(count=1000)):
        if k.startswith("sluice:"):
            continue
        t = r.type(k)
        if t == "string":
            out[k] = r.get(k)
        elif t == "hash":
            out[k] = dict(sorted(r.hgetall(k).items()))
        elif t == "set":
            out[k] = sorted(r.smembers(k))
        elif t == "zset":
            out[k] = {m: float(round(sc, 2)) for m, sc in r.zrange(k, 0, -1, withscores=True)}
        else:
            fail("unexpected key %s of type %s" % (k, t))
    return out


def canon(row):
    if "revenue" in row:
        row = dict(row, revenue=float(round(row["revenue"], 2)))
    return json.dumps(row, sort_keys=True)


def final_rows(kind, batches):
    if kind == "stateless":
        rows = [canon(r) for _, rs in batches for r in rs]
        if len(rows) != len(set(rows)):
            fail("a row was committed twice")
        return sorted(rows)
    last = {}
    for _, rs in batches:
        seen = set()
        for r in rs:
            k = (r["window_start"], r["user"])
            if k in seen:
                fail("window %s emitted twice in one batch" % (k,))
            seen.add(k)
            last[k] = canon(r)
    return [last[k] for k in sorted(last)]


def redis_final(kind, keys):
    if kind == "merge":
        return {k: ({"revenue": round(float(v["revenue"]), 2), "orders": int(v["orders"])}
                    if k.startswith("t:w:") else dict(sorted(v.items())))
                for k, v in keys.items()}
    if kind == "windowed":
        keys = {k: v for k, v in keys.items() if k != "t:emitted"}
        return {k: {"revenue": round(float(v["revenue"]), 2), "orders": int(v["orders"])}
                for k, v in keys.items()}
    return keys


def expect(sink, kind, path):
    kept = []
    for line in open(path):
        if line.strip():
            kept.append(json.loads(line))
    if kind == "stateless":
        kept = [r for r in kept if r["id"] % 10 != 7]
        for r in kept:
            r["cents"] = int(r["amount"] * 100 + 0.5)
        if sink == "redis":
            cents = collections.Counter()
            for r in kept:
                cents[r["user"]] += r["cents"]
            return {"t:cents": {u: str(c) for u, c in sorted(cents.items())},
                    "t:ids": sorted(str(r["id"]) for r in kept),
                    "t:records": str(len(kept))}
        return sorted(canon({"id": r["id"], "user": r["user"], "cents": r["cents"]})
                      for r in kept)
    agg = collections.defaultdict(lambda: [0.0, 0])
    hi = collections.defaultdict(dict)
    lo = collections.defaultdict(dict)
    for r in kept:
        if r["event"] == "buy" and r["amount"] > 0:
            s = r["ts"] // WINDOW_MS * WINDOW_MS
            a = agg[(s, r["user"])]
            a[0] += r["amount"]
            a[1] += 1
            h, l = hi["t:hi:%d" % s], lo["t:lo:%d" % s]
            h[r["user"]] = max(h.get(r["user"], r["amount"]), r["amount"])
            l[r["user"]] = min(l.get(r["user"], r["amount"]), r["amount"])
    if sink == "redis" and kind == "merge":
        out = {"t:w:%s:%d" % (u, s): {"revenue": round(v[0], 2), "orders": v[1]}
               for (s, u), v in sorted(agg.items())}
        for d in (hi, lo):
            for k, m in d.items():
                out[k] = {u: float(round(x, 2)) for u, x in sorted(m.items())}
        return out
    if sink == "redis":
        return {"t:w:%s:%d" % (u, s): {"revenue": round(v[0], 2), "orders": v[1]}
                for (s, u), v in sorted(agg.items())}
    return [canon({"window_start": s, "window_end": s + WINDOW_MS, "user": u,
                   "revenue": v[0], "orders": v[1]})
            for (s, u), v in sorted(agg.items())]


def main():
    verb, sink, kind = sys.argv[1:4]
    where = sys.argv[4:]
    if verb == "expect":
        res = expect(sink, kind, where[0])
    elif sink == "kafka-committed":
        parts = kafka_committed(where[0])
        if verb == "dump":
            res = [[p, sorted(canon(r) for r in rs)] for p, rs in sorted(parts.items())]
        elif kind == "stateless":
            res = final_rows(kind, [(0, [r for rs in parts.values() for r in rs])])
        else:
            # update mode: a window's rows share its user's partition, in
            # commit order; the last is its value
            res = final_rows(kind, [(i, [r]) for rs in parts.values()
                                    for i, r in enumerate(rs)])
    elif sink == "redis":
        keys = redis_keys(where[0])
        # merge: HINCRBYFLOAT's last digits depend on the order of the
        # additions, so even a dump compares rounded sums
        res = keys if verb == "dump" and kind != "merge" else redis_final(kind, keys)
    else:
        batches = list(file_batches(where[0]) if sink == "file" else kafka_batches(*where))
        if verb == "dump":
            res = [[b, sorted(canon(r) for r in rs)] for b, rs in batches]
        else:
            res = final_rows(kind, batches)
    if not res:
        fail("nothing committed")
    if verb != "dump" and isinstance(res, dict):
        res = dict(sorted(res.items()))
    json.dump(res, sys.stdout, indent=0, sort_keys=True)
    print()


main()
