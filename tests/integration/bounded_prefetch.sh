#!/usr/bin/env bash
# Readers with tiny prefetch queues: 40 000 records on 8 partitions read in
# ranges of at most 500 records by 2 workers, with librdkafka told to stop
# fetching a partition at 100 queued messages and to answer with 4 KB at a
# time. Every range pauses its partition at its end and resumes it at the
# next one, and every few dozen records the queue runs dry and the reader
# must wake the fetcher (librdkafka 2.0.2 would otherwise look again only
# after a second, longer than read_timeout: the task would fail three
# times and the job with it). The output holds every record exactly once.
# prefetch_partitions: 0 keeps one partition fetched at a time, as this
# test means (test_kafka_source covers fetching ahead).
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:8
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 40000 --seed 5 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
cat >"$WORK/job.yaml" <<YAML
job: it-prefetch
source:
  kafka:
    brokers: \${KAFKA_BROKERS}
    topics: [clicks]
    max_records_per_batch: 8000
    task_max_records: 500
    read_timeout: 500ms
    prefetch_partitions: 0
    properties:
      queued.min.messages: "100"
      fetch.message.max.bytes: "4096"
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
task_attempts: 3
workers: 2
YAML
KAFKA_BROKERS=$BROKERS expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --log-level debug
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 40000
# Both readers ran dry and woke their fetchers; no task had to be retried.
python3 - "$WORK/err.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
wakes = [int(m) for m in re.findall(r"reader: \d+ partitions assigned, (\d+) fetcher wake-ups", text)]
assert len(wakes) == 2, wakes
assert all(w > 0 for w in wakes), wakes
assert "failed, attempt" not in text, "a task was retried"
print("ok: fetcher wake-ups", wakes)
PY
echo "ok: bounded prefetch"
