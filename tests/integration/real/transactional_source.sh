#!/usr/bin/env bash
# A source topic written by a transactional producer, on the real broker:
# committed and aborted transactions, so the log holds aborted records and
# a control record (commit or abort marker) after each transaction in each
# partition. Offsets are not dense. sluice (read_committed, librdkafka's
# default) must output exactly the committed records, once each, and plan
# across the markers: batches small and odd-sized so that range ends fall
# on markers and inside aborted runs, a batch whose range holds fewer
# records than end - start, and a last range ending on the final marker,
# which no consumer ever receives (available-now must still finish).
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
tag=it-real-txsrc-$$
create_topic "$tag-in" 2

# 12 transactions of 10-40 records over both partitions; every third
# (1, 4, 7, 10) aborted. Record ids are unique; the committed ids are kept.
"$PY" - "$BROKERS" "$tag-in" "$WORK/committed.txt" <<'PY' || fail "the transactional producer failed"
import json, random, sys
from confluent_kafka import Producer
brokers, topic, out = sys.argv[1:4]
p = Producer({"bootstrap.servers": brokers, "transactional.id": topic + "-writer",
              "linger.ms": 0})
p.init_transactions(30)
rnd = random.Random(5)
committed, next_id = [], 0
for t in range(12):
    p.begin_transaction()
    ids = list(range(next_id, next_id + rnd.randrange(10, 41)))
    next_id += len(ids)
    for i in ids:
        p.produce(topic, json.dumps({"id": i, "txn": t}), partition=i % 2)
    p.flush(30)
    if t % 3 == 1:
        p.abort_transaction(30)
    else:
        p.commit_transaction(30)
        committed += ids
open(out, "w").write("\n".join(map(str, committed)) + "\n")
print("produced %d records, %d committed" % (next_id, len(committed)))
PY

cat >"$WORK/job.yaml" <<YAML
job: $tag
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
    max_records_per_batch: 37
    task_max_records: 13
pipeline:
  - parse: json
  - select: [id, txn]
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress json
grep '^{' "$WORK/err.txt" >"$WORK/progress.jsonl" || fail "no progress lines"

# The log as it is: every data record's offset (read_uncommitted), and the
# end of each partition.
kcat -b "$BROKERS" -C -t "$tag-in" -e -q -X isolation.level=read_uncommitted \
  -f '%p %o %s\n' >"$WORK/log.txt" 2>/dev/null || fail "kcat"
SRC_DIR="$SRC" "$PY" - "$BROKERS" "$tag-in" "$WORK" <<'PY' || fail "wrong output or planning"
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["SRC_DIR"], "tests", "integration"))
from check_file_sink import unseal
from confluent_kafka import Consumer, TopicPartition
brokers, topic, work = sys.argv[1:4]

committed = set(int(x) for x in open(work + "/committed.txt").read().split())
rec = {}  # (partition, offset) -> id, every data record
for line in open(work + "/log.txt"):
    p, o, v = line.split(" ", 2)
    rec[(int(p), int(o))] = json.loads(v)["id"]
c = Consumer({"bootstrap.servers": brokers, "group.id": "x"})
hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in (0, 1)}
c.close()
markers = {(p, o) for p in hw for o in range(hw[p]) if (p, o) not in rec}
if len(markers) != 2 * 12:
    sys.exit("expected 24 control records (12 transactions x 2 partitions), found %d" % len(markers))

# 1. exactly the committed records, once each
out, mdir = [], os.path.join(work, "out", "_manifest")
for b in sorted(int(n) for n in os.listdir(mdir) if n.isdigit()):
    for f in unseal(os.path.join(mdir, str(b)))["files"]:
        out += [json.loads(l)["id"] for l in open(os.path.join(work, "out", f["name"]))]
if sorted(out) != sorted(committed):
    dup = len(out) - len(set(out))
    sys.exit("output: %d records (%d twice), want the %d committed; aborted ones seen: %d"
             % (len(out), dup, len(committed), len(set(out) - committed)))

# 2. the plan: every batch's rows are the committed records of its ranges
ends_on_marker = short = 0
last = {}
for line in open(work + "/progress.jsonl"):
    pr = json.loads(line)
    src = pr["sources"][0]
    start, end = src["startOffset"][topic], src["endOffset"][topic]
    n = span = 0
    for p, e in end.items():
        p, e, s = int(p), int(e), int(start.get(p, start.get(str(p), 0)))
        span += e - s
        n += sum(1 for o in range(s, e) if (p, o) in rec and rec[(p, o)] in committed)
        if e > s and (p, e - 1) in markers:
            ends_on_marker += 1
        last[p] = e
    if pr["numInputRows"] != n:
        sys.exit("batch %d read %d rows, its ranges hold %d committed records"
                 % (pr["batchId"], pr["numInputRows"], n))
    short += n < span
if last != hw:
    sys.exit("the last batch ends at %s, the partitions at %s" % (last, hw))
if not ends_on_marker or not short:
    sys.exit("the plan never ended a range on a marker (%d) or held a gap (%d)"
             % (ends_on_marker, short))
print("ok: %d committed records exactly once; %d range ends on a control record, "
      "%d batches with fewer records than offsets" % (len(out), ends_on_marker, short))
PY
echo "ok: a transactional producer's topic as a source"
