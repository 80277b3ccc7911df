#!/usr/bin/env bash
# The same run killed with SIGKILL at 10 random moments and restarted each
# time: the manifest-listed output equals the input exactly.
source "$(dirname "$0")/../integration/lib.bash" "$@"
start_mock --topic clicks:8
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 200000 --seed 5 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
cat >"$WORK/job.yaml" <<YAML
job: it-crash
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 10000
    task_max_records: 3000
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
seed=${SLUICE_CRASH_SEED:-$RANDOM}
echo "crash seed: $seed (rerun with SLUICE_CRASH_SEED=$seed)"
RANDOM=$seed
# Ten crash points: after a random committed batch k (0: during start-up)
# and a further random 0-15 ms, so that kills land in planning, in tasks,
# in the sink commit and in the checkpoint writes.
targets=$(for _ in $(seq 1 10); do echo $((RANDOM % 19)); done | sort -n)
killed=0
for k in $targets; do
  "$SLUICE" run "$WORK/job.yaml" --progress none 2>>"$WORK/runs.err" &
  pid=$!
  if [ "$k" -gt 0 ]; then
    for _ in $(seq 1 3000); do # bounded: 30 s
      [ -e "$WORK/out/_manifest/$k" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.01
    done
  fi
  sleep "0.0$(printf '%02d' $((RANDOM % 16)))"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
done
echo "killed $killed of 10 runs while running"
[ "$killed" -ge 5 ] || fail "only $killed runs were killed while running: the test did not crash anything"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 200000
# Nothing but listed files is left once the job has finished.
listed=$(cat "$WORK"/out/_manifest/[0-9]* | grep -o '"part-[^"]*"' | sort -u | wc -l)
present=$(ls "$WORK/out" | grep -c '^part-' || true)
[ "$listed" = "$present" ] || fail "$present part files but $listed listed"
echo "ok: crash test"
