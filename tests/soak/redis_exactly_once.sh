#!/usr/bin/env bash
# Exactly-once into a real redis-server: 500 000 records, each making
# three Redis effects (SADD of its id, HINCRBY of its cents per user, and
# INCRBY of a record counter: the last two are not idempotent), killed with
# SIGKILL at 20 random moments and restarted. Half of the kills wait until
# the sink is inside a transaction (a client with queued MULTI commands)
# so that they land in the middle of the commit, which is also when the
# next batch's reads run. At the end the Redis
# content equals the content computed from the records read back with
# kcat, exactly.
source "$(dirname "$0")/../integration/lib.bash" "$@"
N=500000
start_mock --topic clicks:16 # 16 partitions: ~3.5 MB each, under retention
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count $N --seed 21 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
start_redis
cat >"$WORK/job.yaml" <<YAML
job: it-redis
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 10000
    task_max_records: 2500
pipeline:
  - parse: json
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
sink:
  redis:
    url: $REDIS_URL
    command:
      - SADD ids {id}
      - HINCRBY cents {user} {cents}
      - INCRBY records 1
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
expect_exit 0 "$SLUICE" validate "$WORK/job.yaml"

seed=${SLUICE_CRASH_SEED:-$RANDOM}
echo "crash seed: $seed (rerun with SLUICE_CRASH_SEED=$seed)"
RANDOM=$seed
batch() { rcli HGET sluice:it-redis:commit batch; }
in_multi() { rcli CLIENT LIST | grep -Eq ' multi=[1-9]'; }
targets=$(for _ in $(seq 1 20); do echo $((RANDOM % 45)); done | sort -n)
killed=0 mid_commit=0 i=0
for k in $targets; do
  i=$((i + 1))
  "$SLUICE" run "$WORK/job.yaml" --progress none --log-level debug \
    2>>"$WORK/runs.err" &
  pid=$!
  for _ in $(seq 1 3000); do # bounded: 30 s
    [ "$(batch)" -ge "$k" ] 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  if [ $((i % 2)) -eq 0 ]; then
    # Wait for the next transaction to be open, then kill inside it.
    caught=0
    for _ in $(seq 1 2000); do
      if in_multi; then caught=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
    done
    if kill -9 "$pid" 2>/dev/null; then
      killed=$((killed + 1))
      mid_commit=$((mid_commit + caught))
    fi
  else
    sleep "0.0$(printf '%02d' $((RANDOM % 40)))"
    if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  fi
  wait "$pid" 2>/dev/null || true
done
echo "killed $killed of 20 runs while running, $mid_commit inside a transaction"
[ "$killed" -ge 10 ] || fail "only $killed runs were killed while running"
# Reported, not required: where a random kill lands depends on the
# machine's speed (the crash matrix aims inside the transaction).
[ "$mid_commit" -ge 1 ] || echo "note: no kill landed inside a transaction this time"
# Batches were read while the previous batch's transaction ran (the kills
# above then also landed there).
beside=$(grep -c "read beside batch" "$WORK/runs.err" || true)
[ "$beside" -gt 0 ] || fail "no batch was read beside the previous commit"
echo "$beside batches were read beside the previous batch's commit"
# Redis dropped every unfinished transaction with its connection.
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none

kcat -C -b "$BROKERS" -t clicks -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
  fail "kcat could not read the topic back"
rcli --raw HGETALL cents >"$WORK/cents.txt"
rcli --raw SMEMBERS ids >"$WORK/ids.txt"
python3 - "$WORK" $N "$(rcli GET records)" <<'PY'
import collections, json, sys
work, n, counted = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want_cents, want_ids = collections.Counter(), set()
lines = 0
for line in open(f"{work}/records.jsonl"):
    r = json.loads(line)
    lines += 1
    want_ids.add(str(r["id"]))
    want_cents[r["user"]] += int(r["amount"] * 100 + 0.5)
assert lines == n, f"kcat read {lines} records, produced {n}"
kv = open(f"{work}/cents.txt").read().split("\n")[:-1]
got_cents = {kv[i]: int(kv[i + 1]) for i in range(0, len(kv), 2)}
got_ids = set(open(f"{work}/ids.txt").read().split())
assert int(counted) == n, f"records counter is {counted}, expected {n}"
assert got_ids == want_ids, f"ids: {len(got_ids)} in redis, {len(want_ids)} expected"
bad = {u: (got_cents.get(u), c) for u, c in want_cents.items() if got_cents.get(u) != c}
assert not bad and len(got_cents) == len(want_cents), f"cents differ for {len(bad)} users, e.g. {list(bad.items())[:3]}"
print(f"ok: {n} records, {len(got_cents)} users, every effect exactly once")
PY
# The commit record holds the last batch and the end of every partition.
[ "$(rcli HGET sluice:it-redis:commit o:clicks:0)" -gt 0 ] || fail "no offsets in the commit record"
echo "ok: redis exactly-once crash test"
