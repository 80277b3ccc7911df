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
PY=/usr/bin/python3
OUTPUT="$SRC/tests/integration/crash/output.py"
COUNT=24000
tag=it-real-grd-$$
input_topic "$tag-in" 12 $COUNT 13
$PY "$OUTPUT" expect redis merge "$WORK/records.jsonl" >"$WORK/expect.json"

cat >"$WORK/job.yaml" <<YAML
job: $tag
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
    max_records_per_batch: 300
    group: { id: $tag-g }
    properties: { session.timeout.ms: "6000", heartbeat.interval.ms: "500" }
pipeline:
  - parse: json
  - filter: 'event == "buy" && amount > 0'
  - window:
      tumbling: 10s
      time: ts
      group_by: [user]
      aggregate: { revenue: sum(amount), orders: count(), hi: max(amount), lo: min(amount) }
      output: merge
sink:
  redis:
    url: $REDIS_URL
    command:
      - HINCRBYFLOAT t:w:{user}:{window_start} revenue {revenue}
      - HINCRBY t:w:{user}:{window_start} orders {orders}
      - ZADD t:hi:{window_start} GT {hi} {user}
      - ZADD t:lo:{window_start} LT {lo} {user}
trigger: { interval: 250ms }
workers: 1
YAML
"$SLUICE" validate "$WORK/job.yaml" >/dev/null 2>"$WORK/validate.err" ||
  fail "validate: $(cat "$WORK/validate.err")"

has_parts() { grep -q "group: assigned [1-9][0-9]* partition" "$WORK/$1.err"; }
# the sink's positions add up to the input: every partition at its end
at_end() {
  local sum
  sum=$(rcli HGETALL "sluice:$tag:commit" |
    awk 'NR % 2 == 1 { f = $0 } NR % 2 == 0 && f ~ /^o:/ { s += $0 } END { print s + 0 }')
  [ "$sum" = $COUNT ]
}
FAIL_SHOW="$WORK/a.err $WORK/b.err $WORK/c.err $WORK/d.err"
start_instance a
pid_a=$!
start_instance b SLUICE_FAILPOINTS="batch.after_commit=crash@3"
pid_b=$!
start_instance c
pid_c=$!

b_exited() { running $pid_a $pid_c && ! alive $pid_b; }
wait_for 180 b_exited
rc=0
wait $pid_b || rc=$?
[ "$rc" = 137 ] || fail "B exited $rc, not 137 (its crash point)"
grep -q "^sluice: failpoint batch.after_commit fired: crash (hit 3)$" "$WORK/b.err" ||
  fail "B died, but not at its crash point"
has_parts b || fail "B owned no partition"
echo "B crashed after its third commit"

start_instance d
pid_d=$!
d_parts() { running $pid_a $pid_c $pid_d && has_parts d; }
wait_for 120 d_parts
echo "D was assigned partitions"

done_all() { running $pid_a $pid_c $pid_d && at_end; }
wait_secs 300 done_all
for n in a c; do has_parts $n || fail "$n owned no partition"; done
for p in $pid_a $pid_c $pid_d; do kill -TERM "$p"; done
for n in a c d; do
  eval "p=\$pid_$n"
  rc=0
  wait "$p" || rc=$?
  [ "$rc" = 0 ] || fail "$n exited $rc after SIGTERM, not 0"
done
claims=$(rcli HGET "sluice:$tag:commit" claims)
[ "${claims:-0}" -ge 4 ] || fail "only ${claims:-0} claims in the sink's record"
[ -z "$(rcli HGET "sluice:$tag:commit" batch)" ] || fail "group mode wrote the shared batch field"

$PY "$OUTPUT" final redis merge "$REDIS_PORT" >"$WORK/got.json"
cmp -s "$WORK/expect.json" "$WORK/got.json" || {
  diff "$WORK/expect.json" "$WORK/got.json" | head -20 >&2
  fail "the final Redis content differs from the one computed from the input"
}
echo "ok: group mode, Redis merge: 3 instances, one crashed after its third commit, one joined later ($claims claims); every record counted once"
