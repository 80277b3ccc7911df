#!/usr/bin/env bash
# Source outages. The job reads a `sluice mock-kafka --control` cluster,
# whose brokers the test takes down and up, and writes to the file sink.
#  1. The cluster down while the job runs, then up: planning is retried
#     with backoff (source.kafka.retry), the job keeps running and reads
#     what was produced after the outage; the output is exact.
#  2. The cluster down for good: once source.retry is spent the job exits 1
#     with a clear message; with the cluster back, a restart completes the
#     output, exactly.
#  3. SIGTERM while the cluster is down: a clean stop (exit 0), as at any
#     other time; the restart completes the output.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4

produce() { # FIRST COUNT
  "$SLUICE" produce --brokers "$BROKERS" --topic clicks --first "$1" \
    --count "$2" --seed 6 2>"$WORK/produce.err" ||
    fail "produce: $(cat "$WORK/produce.err")"
}

write_job() { # N ATTEMPTS
  cat >"$WORK/job$1.yaml" <<YAML
job: it-source-outage-$1
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 5000
    connect_timeout: 1s
    retry: { attempts: $2, backoff: 100ms, max_backoff: 500ms, max_elapsed: 60s }
sink:
  file: { path: $WORK/out$1 }
trigger: { interval: 200ms }
checkpoint: { dir: $WORK/ckpt$1 }
metrics: { listen: 127.0.0.1:$MPORT }
workers: 2
YAML
}

# source_retries: the job's sluice_source_retries_total.
source_retries() {
  python3 - "http://127.0.0.1:$MPORT/metrics" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(re.search(r'^sluice_source_retries_total\{source="kafka"\} (\d+)$', text, re.M).group(1))
PY
}

# complete N COUNT: the sink holds ids 0..COUNT-1 exactly once.
complete() {
  python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out$1" "$2" \
    >/dev/null 2>&1
}

# --- 1. down while running, then up
MPORT=$(free_port)
produce 0 20000
write_job 1 1000
"$SLUICE" run "$WORK/job1.yaml" --progress none 2>"$WORK/run1.err" &
pid=$!
FAIL_SHOW="$WORK/run1.err $WORK/mock.err"
wait_for 60 complete 1 20000
mock_ctl down -1
grep_log() { grep -Eq "$1" "$2" || { kill -0 "$pid" 2>/dev/null || { cat "$2" >&2; fail "the job exited"; }; false; }; }
wait_for 120 grep_log "planning batch [0-9]+ failed \(try 3\)" "$WORK/run1.err"
kill -0 "$pid" 2>/dev/null || { cat "$WORK/run1.err" >&2; fail "the job exited during the outage"; }
mock_ctl up -1
produce 20000 10000
wait_for 60 complete 1 30000
retries=$(source_retries) || fail "no sluice_source_retries_total"
[ "$retries" -ge 2 ] || fail "sluice_source_retries_total is $retries after the outage"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/run1.err" >&2; fail "the job exited $rc across a source outage"; }
grep -Eq "planning batch [0-9]+ succeeded after [0-9]+ tries" "$WORK/run1.err" ||
  { cat "$WORK/run1.err" >&2; fail "no planning was retried"; }
grep -m1 "cannot reach Kafka" "$WORK/run1.err" ||
  fail "the retries do not say what failed: $(cat "$WORK/run1.err")"
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out1" 30000

# --- 2. down until the retry budget is spent
MPORT=$(free_port)
write_job 2 3
"$SLUICE" run "$WORK/job2.yaml" --progress none 2>"$WORK/run2.err" &
pid=$!
wait_for 60 complete 2 30000
mock_ctl down -1
rc=0
wait "$pid" || rc=$? # bounded: 3 tries of 1 s, pauses under 1 s
mock_ctl up -1
[ "$rc" = 1 ] || { cat "$WORK/run2.err" >&2; fail "expected exit 1 once source.retry was spent, got $rc"; }
grep -Eq "planning batch [0-9]+ failed: gave up after 3 tries in [0-9.]+ s \(source.retry limits\): cannot reach Kafka at $BROKERS" "$WORK/run2.err" ||
  { cat "$WORK/run2.err" >&2; fail "no clear message when the retry budget was spent"; }
grep "gave up" "$WORK/run2.err"
produce 30000 5000
expect_exit 0 "$SLUICE" run "$WORK/job2.yaml" --progress none --trigger available-now
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out2" 35000

# --- 3. stopped during an outage
MPORT=$(free_port)
write_job 3 1000
"$SLUICE" run "$WORK/job3.yaml" --progress none 2>"$WORK/run3.err" &
pid=$!
wait_for 60 complete 3 35000
mock_ctl down -1
# Bounded as in 1, and failing at once with the job's log if it exits: a
# planning call already waiting on the cluster when it went down has once
# taken over 60 s to fail (TSan, both cores busy).
wait_for 150 grep_log "planning batch [0-9]+ failed \(try 2\)" "$WORK/run3.err"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
mock_ctl up -1
[ "$rc" = 0 ] || { cat "$WORK/run3.err" >&2; fail "SIGTERM during a source outage: exit $rc, not 0"; }
grep -q "stopped on request after batch" "$WORK/run3.err" ||
  fail "no clean stop: $(cat "$WORK/run3.err")"
produce 35000 1000
expect_exit 0 "$SLUICE" run "$WORK/job3.yaml" --progress none --trigger available-now
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out3" 36000
echo "ok: source outages"
