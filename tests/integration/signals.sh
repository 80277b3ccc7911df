#!/usr/bin/env bash
# SIGTERM finishes the batch in progress and exits 0 with a clean
# checkpoint; a second signal exits at once.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 2>/dev/null
cat >"$WORK/job.yaml" <<YAML
job: it-signals
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 1000
sink:
  file: { path: $WORK/out }
trigger: { interval: 50ms }
checkpoint: { dir: $WORK/ckpt }
YAML

# wait_for_commit N: waits (bounded) until batch N is in the manifest.
wait_for_commit() {
  for _ in $(seq 1 1200); do # bounded: 60 s
    [ -e "$WORK/out/_manifest/$1" ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "sluice exited early: $(cat "$WORK/run.err")"
    sleep 0.05
  done
  fail "batch $1 was not committed within 60 s"
}

"$SLUICE" run "$WORK/job.yaml" 2>"$WORK/run.err" &
pid=$!
wait_for_commit 3
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "exit $rc after SIGTERM: $(cat "$WORK/run.err")"
grep -q "stopped on request" "$WORK/run.err" || fail "no stop message"
ls -a "$WORK/ckpt/offsets" "$WORK/ckpt/commits" | grep -q '\.tmp' && fail "temp files left"
"$SLUICE" checkpoint show "$WORK/ckpt" >/dev/null || fail "checkpoint unreadable"
# It continues where it stopped, and the output stays exact.
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --trigger available-now
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 20000

# Two signals: exit at once with 130. The batch in progress is held at a
# crash point (sleep of 10 min) so that the second signal surely finds the
# job still running: the first is taken, the job waits to finish the
# batch, and the second ends it.
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 --first 20000 2>/dev/null
SLUICE_FAILPOINTS='batch.after_reads=sleep(600000)' "$SLUICE" run "$WORK/job.yaml" 2>"$WORK/run.err" &
pid=$!
running() {
  kill -0 "$pid" 2>/dev/null || fail "sluice exited early: $(cat "$WORK/run.err")"
  grep -q "$1" "$WORK/run.err"
}
wait_for 60 running "failpoint batch.after_reads fired: sleep(600000)"
kill -INT "$pid"
wait_for 60 running "SIGINT received: finishing the batch in progress"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "exit $rc after two SIGINTs: $(cat "$WORK/run.err")"
grep -q "exiting at once" "$WORK/run.err" || fail "no 'exiting at once' message"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --trigger available-now
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 40000
echo "ok: signals"
