#!/usr/bin/env bash
# 200 000 records on 8 partitions through the file sink, 10 000 per batch:
# the output holds every input record exactly once.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:8
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 200000 --seed 3 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
cat >"$WORK/job.yaml" <<YAML
job: it-file
source:
  kafka:
    brokers: \${KAFKA_BROKERS}
    topics: [clicks]
    max_records_per_batch: 10000
    task_max_records: 4000
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
KAFKA_BROKERS=$BROKERS expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress json
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 200000
# Every progress object is valid JSON; rows add up; no batch is over the cap.
python3 - "$WORK/err.txt" <<'PY'
import json, sys
rows, n = 0, 0
for line in open(sys.argv[1]):
    if line.startswith("{"):
        p = json.loads(line)
        assert p["numInputRows"] <= 10000, p["numInputRows"]
        assert p["sources"][0]["numInputRows"] == p["numInputRows"]
        assert p["batchId"] == n + 1, (p["batchId"], n)
        rows += p["numInputRows"]; n += 1
assert rows == 200000, rows
assert n == 20, n
print("ok: progress", n, "batches")
PY
"$SLUICE" checkpoint show "$WORK/ckpt" >"$WORK/show.txt" || fail "checkpoint show"
grep -q "it-file" "$WORK/show.txt" || fail "checkpoint show does not name the job"
grep -q "20" "$WORK/show.txt" || fail "checkpoint show does not show batch 20"
echo "ok: exactly once"
