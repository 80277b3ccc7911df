#!/usr/bin/env python3
"""Checks the output of an exactly-once Kafka sink against the expected ids.

usage: check_kafka_eos.py MODE RECORDS COUNT MOD SKIP CKPT_DIR...

RECORDS  the output topic as read by kcat -f '%h\\t%k\\t%s\\n' (headers,
         key, value {"id": .., "user": ..})
COUNT    ids 0..COUNT-1 were produced; the job keeps ids with
         id % MOD != SKIP, keyed by user
CKPT_DIR checkpoint directories of the job's runs; commits/N holds the
         attempt that committed batch N as "sink"
MODE     attempts: every record the topic holds is read, aborted ones too
         (librdkafka's mock does not hide aborted transactions), so the
         records of batch N are those whose sluice.attempt header is the
         attempt commits/N names.
         read_committed: a plain read_committed consumer read the topic
         (a real Kafka); every record it sees must be of the committed
         attempt of its batch, and there must be exactly one per batch.

In both modes: every batch 1..K is committed by exactly one attempt, an
attempt belongs to one batch, and the records of the committed attempts are
exactly the expected ids, each once, with the key of its user.
"""
import collections
import json
import os
import sys


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def read_commits(dirs):
    notes = {}
    for d in dirs:
        cdir = os.path.join(d, "commits")
        for name in os.listdir(cdir):
            if not name.isdigit():
                continue
            text = open(os.path.join(cdir, name)).read()
            body = text[: text.rindex("#sluice-checksum")]
            c = json.loads(body)
            b, a = c["batch"], c.get("sink", "")
            if not a:
                fail("%s/commits/%s has no sink attempt" % (d, name))
            if notes.get(b, a) != a:
                fail("batch %d committed as two attempts: %s and %s" % (b, notes[b], a))
            notes[b] = a
    if not notes:
        fail("no commits")
    if sorted(notes) != list(range(1, max(notes) + 1)):
        fail("committed batches are not 1..%d: %s" % (max(notes), sorted(notes)))
    by_attempt = collections.Counter(notes.values())
    twice = [a for a, n in by_attempt.items() if n > 1]
    if twice:
        fail("attempts named by more than one batch: %s" % twice[:5])
    return notes


def read_records(path):
    groups = collections.defaultdict(list)  # (batch, attempt) -> [(key, value)]
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        hdrs, key, value = line.split("\t", 2)
        h = dict(kv.split("=", 1) for kv in hdrs.split(",") if "=" in kv)
        if "sluice.batch" not in h or "sluice.attempt" not in h:
            fail("a record without sluice headers: %r" % line[:200])
        groups[(int(h["sluice.batch"]), h["sluice.attempt"])].append((key, value))
    return groups


def main():
    mode, records, count, mod, skip = sys.argv[1:6]
    count, mod, skip = int(count), int(mod), int(skip)
    notes = read_commits(sys.argv[6:])
    groups = read_records(records)
    batches_of = collections.defaultdict(set)
    for b, a in groups:
        batches_of[a].add(b)
    for a, bs in batches_of.items():
        if len(bs) > 1:
            fail("attempt %s wrote records of batches %s" % (a, sorted(bs)))
    attempts = collections.defaultdict(set)
    for b, a in groups:
        attempts[b].add(a)
    if mode == "read_committed":
        for b, seen in attempts.items():
            if b not in notes:
                fail("a read_committed consumer sees batch %d, which no "
                     "commit names (attempts %s)" % (b, sorted(seen)))
            if seen != {notes[b]}:
                fail("a read_committed consumer sees batch %d from attempts "
                     "%s; committed: %s" % (b, sorted(seen), notes[b]))
    elif mode != "attempts":
        fail("unknown mode " + mode)
    ids = collections.Counter()
    for b, a in notes.items():
        for key, value in groups.get((b, a), []):
            v = json.loads(value)
            if key != v["user"]:
                fail("record %s has key %r" % (value, key))
            ids[v["id"]] += 1
    want = collections.Counter(i for i in range(count) if i % mod != skip)
    missing = want - ids
    extra = ids - want
    if missing or extra:
        fail("committed output differs from the expected: %d missing (%s), "
             "%d extra or doubled (%s)" % (
                 sum(missing.values()), sorted(missing)[:5],
                 sum(extra.values()), sorted(extra)[:5]))
    other = sum(len(a) - 1 for a in attempts.values() if len(a) > 1)
    other += sum(1 for b in attempts if b not in notes)
    print("ok: %d batches, one committed attempt each; %d records exactly "
          "once; %d other attempts in the topic (aborted or cut short)"
          % (len(notes), sum(ids.values()), other))


main()
