#!/usr/bin/env bash
# Group mode with the continuous trigger on the real broker: the windowed
# `output: merge` job of group_redis (lib.bash: group_redis_job), its
# trigger continuous (epochs of 250 ms, records written into Redis as they
# come, guarded by their partitions' positions and claims). Instances A and
# B share 12 partitions while a producer writes; B crashes (SIGKILL by its
# crash point) right after its third epoch's commit; once that is proven
# and A owns all 12 (B's session timed out), C starts and must be assigned
# partitions and run streams, and A's streams must start again over the
# partitions A kept. Every rebalance drains an instance's streams: their
# epoch is committed, then they start again over the partitions owned
# now. When the
# producer has stopped and the sink's positions reach the end of every
# partition, A and C are stopped (SIGTERM, exit 0) and the final Redis
# content must equal the one computed from the records (output.py).
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
start_redis
tag=it-real-gct-$$
create_topic "$tag-in" 12
group_redis_job "$tag" 0 300 3000
sed -i 's/^trigger: { interval: 250ms }$/trigger: { continuous: 250ms }/' "$WORK/job.yaml"
grep -q "continuous: 250ms" "$WORK/job.yaml" || fail "the job's trigger is not continuous"
"$SLUICE" validate "$WORK/job.yaml" >/dev/null 2>"$WORK/validate.err" ||
  fail "validate: $(cat "$WORK/validate.err")"

start_producer "$tag-in" 3000 41

continuous_crash_and_join
# A's streams follow the rebalance: they start again over what A owns now
# (A owned all 12 before C joined, so that is a second start at least)
a_follows() {
  running $pid_a $pid_c $pid_p || return 1
  local n k
  n=$(grep -c "continuous: [0-9]* streams over" "$WORK/a.err")
  k=$(grep -o "continuous: [0-9]* streams over [0-9]*" "$WORK/a.err" | tail -1 | awk '{print $5}')
  [ "$n" -ge 2 ] && [ "$k" = "$(owns_now a)" ] && [ "$k" -lt 12 ]
}
wait_for 60 a_follows
echo "A's streams run over its $(owns_now a) partitions now"

stop_producer "$tag-in"
GROUP_REDIS_COUNT=$INPUT_COUNT
done_all() { running $pid_a $pid_c && redis_at_end; }
wait_secs 300 done_all
stop_all a c
redis_exact
echo "ok: group mode, continuous: 3 instances, one crashed after its third epoch, one joined later; $GROUP_REDIS_COUNT records, each counted once"
