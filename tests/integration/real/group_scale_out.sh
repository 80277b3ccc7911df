#!/usr/bin/env bash
# Group mode on the real broker: three instances of one job (source.kafka.
# group, the Kafka sink with exactly_once, a stateless pipeline), each with
# its own checkpoint directory, share 12 partitions. Instance B crashes
# (SIGKILL by its crash point) right after its third commit, mid-run; once
# that is proven, instance D starts and takes its share. When the group
# has committed the end of every partition, the others are stopped (SIGTERM,
# exit 0) and a read_committed consumer checks that every row of the input
# is in the output exactly once. Each instance must have owned partitions,
# and no membership consumer may have been handed a record.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
PY=/usr/bin/python3
CHECK="$SRC/tests/integration/real/check_eos.py"
COUNT=24000
tag=it-real-gso-$$
input_topic "$tag-in" 12 $COUNT 11
create_topic "$tag-out" 12

group_kafka_job "$tag" 200 6000 "interval: 250ms" true

FAIL_SHOW="$WORK/a.err $WORK/b.err $WORK/c.err $WORK/d.err"
start_instance a
pid_a=$!
start_instance b SLUICE_FAILPOINTS="batch.after_commit=crash@3"
pid_b=$!
start_instance c
pid_c=$!

# B: SIGKILLed by its crash point after its third commit
b_exited() { running $pid_a $pid_c && ! alive $pid_b; }
wait_for 180 b_exited
crashed b batch.after_commit 3
echo "B crashed after its third commit"

# D joins later and takes partitions
start_instance d
pid_d=$!
d_parts() { running $pid_a $pid_c $pid_d && has_parts d; }
wait_for 120 d_parts
echo "D was assigned partitions"

# the group committed the end of every input partition (the sinks'
# transactions store the offsets)
at_end() {
  running $pid_a $pid_c $pid_d &&
    $PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" >/dev/null 2>&1
}
wait_secs 300 at_end
for n in a c; do has_parts $n || fail "$n owned no partition"; done

for p in $pid_a $pid_c $pid_d; do kill -TERM "$p"; done
for n in a c d; do
  eval "p=\$pid_$n"
  rc=0
  wait "$p" || rc=$?
  [ "$rc" = 0 ] || fail "$n exited $rc after SIGTERM, not 0"
done
if grep -h "membership consumer was handed" "$WORK"/[abcd].err; then
  fail "a membership consumer fetched records"
fi
abandoned=$(cat "$WORK"/[abcd].err | grep -c "refused the offsets" || true)
echo "$abandoned batch commits were refused by the group during rebalances (abandoned, read again)"

$PY "$CHECK" output "$BROKERS" "$tag-out" "$WORK/records.jsonl" || fail "output"
$PY "$CHECK" offsets "$BROKERS" "$tag-g" "$tag-in" || fail "group offsets"
echo "ok: group mode: 3 instances, one crashed after its third commit, one joined later; every row exactly once"
