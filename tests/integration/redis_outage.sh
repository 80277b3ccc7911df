#!/usr/bin/env bash
# Redis goes away during a run:
#  1. redis-server is stopped mid-run and started again: the job retries
#     the commit within sink.redis.retry, keeps its place, and the result
#     is exact (nothing lost, nothing doubled);
#  2. Redis stays down: once the retry budget is spent the job exits 1
#     with a clear message, and a later run completes exactly.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4
produce() {
  "$SLUICE" produce --brokers "$BROKERS" --topic clicks --count "$1" \
    --seed "$2" 2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
}
produce 150000 31
start_redis
job() { # job ATTEMPTS
  cat >"$WORK/job.yaml" <<YAML
job: it-outage
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 1500
pipeline:
  - parse: json
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
sink:
  redis:
    url: $REDIS_URL
    command: [ 'HINCRBY cents {user} {cents}', 'INCRBY records 1' ]
    timeout: 2s
    retry: { attempts: $1, backoff: 20ms, max_backoff: 200ms }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
}
batch() { rcli HGET sluice:it-outage:commit batch 2>/dev/null || echo 0; }
# check N: Redis holds exactly the effects of the first N records.
check() {
  kcat -C -b "$BROKERS" -t clicks -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
    fail "kcat could not read the topic back"
  rcli --raw HGETALL cents >"$WORK/cents.txt"
  python3 - "$WORK" "$1" "$(rcli GET records)" <<'PY'
import collections, json, sys
work, n, counted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = collections.Counter()
lines = 0
for line in open(f"{work}/records.jsonl"):
    r = json.loads(line)
    lines += 1
    want[r["user"]] += int(r["amount"] * 100 + 0.5)
assert lines == n, f"kcat read {lines} records, expected {n}"
kv = open(f"{work}/cents.txt").read().split("\n")[:-1]
got = {kv[i]: int(kv[i + 1]) for i in range(0, len(kv), 2)}
assert counted == n, f"records counter is {counted}, expected {n}"
assert got == dict(want), "cents per user differ"
print(f"ok: {n} records exactly once")
PY
}

# 1. Stopped and restarted mid-run.
job 1000
"$SLUICE" run "$WORK/job.yaml" --progress none 2>"$WORK/run1.err" &
pid=$!
for _ in $(seq 1 3000); do # bounded: 30 s
  [ "$(batch)" -ge 10 ] 2>/dev/null && break
  sleep 0.01
done
[ "$(batch)" -ge 10 ] || fail "the job did not reach batch 10: $(cat "$WORK/run1.err")"
stop_redis
for _ in $(seq 1 1000); do # bounded: 10 s
  grep -q 'commit of batch [0-9]* failed (try 2)' "$WORK/run1.err" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
grep -q 'failed (try 2), retrying in' "$WORK/run1.err" ||
  fail "no retries while Redis was down: $(cat "$WORK/run1.err")"
kill -0 "$pid" 2>/dev/null || fail "the job exited while Redis was down"
start_redis
wait "$pid" || fail "the job failed after Redis came back: $(tail -5 "$WORK/run1.err")"
grep -q 'succeeded after [0-9]* tries' "$WORK/run1.err" || fail "no recovery logged"
check 150000

# 2. Down for good: the retry budget runs out.
produce 30000 32
job 3
stop_redis
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err 'gave up after 3 tries .*sink.retry limits.*cannot connect to redis at 127.0.0.1:[0-9]+/0'
start_redis
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
check 180000
echo "ok: redis outage test"
