#!/usr/bin/env bash
# Group mode with the Redis sink on the real broker, a rebalance storm:
# instance A runs throughout while a producer writes 2000 records/s into
# 12 partitions, and 20 more instances (s1..s20) join one after another.
# Each is started, then the one before it is stopped; each of the 15
# ordinary ones is stopped (SIGTERM, must exit 0) only once it was
# assigned partitions and committed a batch of its own, so every one of
# them really took part. Every 4th instance crashes instead (SIGKILL by
# its crash point, at its first hit) at one of three places of its first
# batch: after reading its records, inside its Redis commit before EXEC,
# and after its checkpoint commit; its session (3 s) times out and the
# group moves its partitions. Then the producer is stopped, the topic is
# read back, and once the sink's positions reach the end of every
# partition the final Redis content must equal the one computed from the
# records (output.py): every record counted once through 20 rebalances.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
start_redis
tag=it-real-gst-$$
create_topic "$tag-in" 12
group_redis_job "$tag" 0 2000 3000

start_producer "$tag-in" 2000 23

FAIL_SHOW="$WORK/a.err"
start_instance a
pid_a=$!
a_parts() { running $pid_a $pid_p && has_parts a; }
wait_for 120 a_parts

# committed_own NAME: NAME's checkpoint holds a batch it committed (not
# one it abandoned).
committed_own() {
  local f
  for f in "$WORK/ckpt-$1"/commits/[0-9]*; do
    [ -e "$f" ] && ! grep -q abandoned "$f" && return 0
  done
  return 1
}
points=(batch.after_reads sink.redis.before_exec batch.after_commit)
prev=""
crashed=0
for i in $(seq 1 20); do
  n=s$i
  FAIL_SHOW="$WORK/a.err $WORK/$n.err${prev:+ $WORK/$prev.err}"
  point=""
  if ((i % 4 == 0)); then
    point=${points[$(((i / 4 - 1) % 3))]}
    start_instance $n SLUICE_FAILPOINTS="$point=crash@1"
  else
    start_instance $n
  fi
  eval "pid_$n=\$!"
  if [ -n "$prev" ]; then
    stop_all $prev
    committed_own $prev || fail "$prev did not commit a batch of its own"
  fi
  eval "p=\$pid_$n"
  if [ -n "$point" ]; then
    gone() { running $pid_a $pid_p && ! alive $p; }
    wait_for 120 gone
    crashed $n $point 1
    crashed=$((crashed + 1))
    echo "$n crashed at $point"
    prev=""
  else
    took_part() { running $pid_a $pid_p $p && has_parts $n && committed_own $n; }
    wait_for 120 took_part
    echo "$n owned partitions and committed"
    prev=$n
  fi
done
if [ -n "$prev" ]; then
  stop_all $prev
  committed_own $prev || fail "$prev did not commit a batch of its own"
fi
[ "$crashed" = 5 ] || fail "$crashed instances crashed, not 5"

# the producer stops; the topic as written is the reference input
stop_producer "$tag-in"
GROUP_REDIS_COUNT=$INPUT_COUNT
echo "the producer wrote $GROUP_REDIS_COUNT records during the storm"

FAIL_SHOW="$WORK/a.err"
done_all() { running $pid_a && redis_at_end; }
wait_secs 300 done_all
stop_all a
claims=$(rcli HGET "sluice:$tag:commit" claims)
[ "${claims:-0}" -ge 21 ] || fail "only ${claims:-0} claims in the sink's record, for 21 instances"

redis_exact
echo "ok: rebalance storm, Redis merge: 20 instances joined and left around A (5 crashed, $claims claims); $GROUP_REDIS_COUNT records, each counted once"
