#!/usr/bin/env bash
# Group mode on the real broker with the Redis sink, a zombie: instances A
# and Z of one windowed `output: merge` job share 12 partitions. Z stops
# (SIGSTOP, by its crash point's `stop` action) inside its third batch
# commit, with the whole transaction queued (WATCH, MULTI, every command)
# and EXEC not sent. Its session times out and the group gives every
# partition to A, which claims them in Redis (a newer token per
# partition) and goes on from the sink's positions. Then Z is resumed
# (SIGCONT): its EXEC finds the watched commit record changed, it looks
# again, finds its partitions claimed by another instance, and writes
# nothing (SL_ERR_FENCED); it abandons the batch, rejoins and goes on. The
# test proves the attempt (the crash point fired inside the commit and the
# refusal names that batch) and that the final Redis content is exact:
# the refused batch's records counted once, by whoever owns them now.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
start_redis
COUNT=12000
tag=it-real-grz-$$
input_topic "$tag-in" 12 $COUNT 17
group_redis_job "$tag" $COUNT 100

FAIL_SHOW="$WORK/a.err $WORK/z.err"
start_instance a
pid_a=$!
start_instance z SLUICE_FAILPOINTS="sink.redis.before_exec=stop@3"
pid_z=$!

wait_for 120 stopped $pid_z
grep -q "^sluice: failpoint sink.redis.before_exec fired: stop (hit 3)$" "$WORK/z.err" ||
  fail "Z stopped, but not at its crash point"
has_parts z || fail "Z owned no partition"
claims_before=$(rcli HGET "sluice:$tag:commit" claims)
echo "Z stopped inside a commit, before EXEC ($claims_before claims so far)"

# Z's session times out: A owns all 12 (its newest "owns" line, written
# after Z stopped: A may have owned all 12 before Z joined)
before=$(owned_lines a)
owns_all() { running $pid_a && [ "$(owned_lines a)" -gt "$before" ] && [ "$(owns_now a)" = 12 ]; }
wait_for 120 owns_all
claims_now=$(rcli HGET "sluice:$tag:commit" claims)
[ "$claims_now" -gt "$claims_before" ] || fail "A owns every partition but claimed none of Z's"
echo "A owns every partition and claimed Z's ($claims_now claims)"

kill -CONT $pid_z
refused() { running $pid_a $pid_z && grep -q "group: the sink refused the commit of batch" "$WORK/z.err"; }
wait_for 120 refused
line=$(grep -m1 "group: the sink refused the commit of batch" "$WORK/z.err")
batch=$(sed -n 's/.*refused the commit of batch \([0-9]*\) .*/\1/p' <<<"$line")
[ -n "$batch" ] || fail "cannot read the refused batch: $line"
grep -q "the commit of batch $batch was refused and wrote nothing: partition $tag-in:[0-9]* was claimed by another instance" <<<"$line" ||
  fail "Z's refusal is not the claim check's: $line"
echo "Z tried to commit batch $batch and was refused: ${line#*(}"

done_all() { running $pid_a $pid_z && redis_at_end; }
wait_secs 300 done_all
stop_all a z
if grep -h "membership consumer was handed" "$WORK"/[az].err; then
  fail "a membership consumer fetched records"
fi
grep -q "abandoned: fenced" "$WORK/ckpt-z/commits/$batch" ||
  fail "Z's checkpoint does not close batch $batch as abandoned"
redis_exact
echo "ok: group zombie, Redis: Z's commit of batch $batch was refused after A claimed its partitions; the output is exact"
