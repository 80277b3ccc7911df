#!/usr/bin/env bash
# Group mode with an at-least-once sink on the real broker: instances A and
# B of one job (the Kafka sink without exactly_once) share 12 partitions.
# Such a sink keeps no positions, so the group's offsets are the resume
# point: the membership consumer commits every batch's ends synchronously.
# B is stopped (SIGTERM, exit 0) after its third commit; A is assigned B's
# partitions and resumes them at the group's offsets, not at the starting
# offsets. At the end every row of the input is in the output at least
# once, and the group holds the end of every partition.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
COUNT=12000
tag=it-real-galo-$$
input_topic "$tag-in" 12 $COUNT 3
create_topic "$tag-out" 12

group_kafka_job "$tag" 100 6000 "interval: 250ms" false

FAIL_SHOW="$WORK/a.err $WORK/b.err"
start_instance a
pid_a=$!
start_instance b SLUICE_FAILPOINTS="batch.after_commit=sleep(0)@3"
pid_b=$!

third() {
  running $pid_a $pid_b &&
    grep -q "^sluice: failpoint batch.after_commit fired: sleep(0) (hit 3)$" "$WORK/b.err"
}
wait_for 120 third
kill -TERM $pid_b
rc=0
wait $pid_b || rc=$?
[ "$rc" = 0 ] || fail "B exited $rc after SIGTERM, not 0"
has_parts b || fail "B owned no partition"
echo "B stopped after its third commit"

# A takes B's partitions at the group's offsets (some above 0)
resumed() {
  running $pid_a &&
    grep "resume at the group's offsets" "$WORK/a.err" | grep -q " at [1-9][0-9]*"
}
wait_for 120 resumed
at_end() {
  running $pid_a && $PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" >/dev/null 2>&1
}
wait_secs 300 at_end
kill -TERM $pid_a
rc=0
wait $pid_a || rc=$?
[ "$rc" = 0 ] || fail "A exited $rc after SIGTERM, not 0"
if grep -h "membership consumer was handed" "$WORK"/[ab].err; then
  fail "a membership consumer fetched records"
fi
$PY "$CHECK" atleast "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
echo "ok: group mode, at-least-once: B left after its third commit, A resumed its partitions at the group's offsets; every row at least once"
