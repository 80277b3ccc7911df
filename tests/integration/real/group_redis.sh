#!/usr/bin/env bash
# Group mode with the Redis sink on the real broker: three instances of a
# windowed job with output: merge (sums, counts, highest and lowest
# amounts per user per 10 s window, merged into Redis by each instance
# for the partitions it owns, guarded by their positions and claims)
# share 12 partitions. Instance B crashes (SIGKILL by its crash point)
# right after its third commit; once that is proven, D starts and takes
# its share. When the sink's positions reach the end of every partition
# the others are stopped (SIGTERM, exit 0), and the final Redis content
# must equal the one computed from the input records (output.py): every
# record counted once, whichever instances wrote it.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
start_redis
COUNT=24000
tag=it-real-grd-$$
input_topic "$tag-in" 12 $COUNT 13
group_redis_job "$tag" $COUNT 300

FAIL_SHOW="$WORK/a.err $WORK/b.err $WORK/c.err $WORK/d.err"
start_instance a
pid_a=$!
start_instance b SLUICE_FAILPOINTS="batch.after_commit=crash@3"
pid_b=$!
start_instance c
pid_c=$!

b_exited() { running $pid_a $pid_c && ! alive $pid_b; }
wait_for 180 b_exited
crashed b batch.after_commit 3
echo "B crashed after its third commit"

start_instance d
pid_d=$!
d_parts() { running $pid_a $pid_c $pid_d && has_parts d; }
wait_for 120 d_parts
echo "D was assigned partitions"

done_all() { running $pid_a $pid_c $pid_d && redis_at_end; }
wait_secs 300 done_all
for n in a c; do has_parts $n || fail "$n owned no partition"; done
stop_all a c d
claims=$(rcli HGET "sluice:$tag:commit" claims)
[ "${claims:-0}" -ge 4 ] || fail "only ${claims:-0} claims in the sink's record"
[ -z "$(rcli HGET "sluice:$tag:commit" batch)" ] || fail "group mode wrote the shared batch field"

redis_exact
echo "ok: group mode, Redis merge: 3 instances, one crashed after its third commit, one joined later ($claims claims); every record counted once"
