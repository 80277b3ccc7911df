#!/usr/bin/env bash
# Configuration ergonomics:
#  1. `validate --print` writes the job with every default filled in and
#     secrets masked, and what it writes is itself a valid job;
#  2. `run --dry-run` connects to the source and the sink, says what a run
#     would do, and writes nothing; an unreachable sink fails it.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:2
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 1000 --seed 71 \
  2>/dev/null || fail "produce"
start_redis
cat >"$WORK/job.yaml" <<YAML
job: it-ops
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    properties: { sasl.password: kafkapw1, client.id: ops-test }
pipeline:
  - parse: json
  - filter: 'event == "buy"'
sink:
  redis:
    url: redis://127.0.0.1:$REDIS_PORT/0
    password: \${REDIS_PASSWORD}
    command: 'SADD buyers {user}'
    retry: { attempts: 2, backoff: 10ms }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
YAML

# 1. --print
export REDIS_PASSWORD=redispw2
expect_exit 0 "$SLUICE" validate "$WORK/job.yaml" --print
cp "$WORK/out.txt" "$WORK/printed.yaml"
for want in 'max_records_per_batch: 100000' 'task_max_records: 50000' \
  'timeout: 10s' 'pipeline: 1000' 'max_elapsed: 5m' 'retain: 100' \
  'on_error: fail' 'client.id: ops-test' '- filter: "event == \"buy\""'; do
  grep -qF -- "$want" "$WORK/printed.yaml" || fail "--print lacks '$want': $(cat "$WORK/printed.yaml")"
done
if grep -q 'kafkapw1\|redispw2' "$WORK/printed.yaml"; then fail "--print showed a secret"; fi
[ "$(grep -c '"\*\*\*\*\*\*\*\*"' "$WORK/printed.yaml")" = 2 ] || fail "secrets not masked: $(cat "$WORK/printed.yaml")"
expect_exit 0 "$SLUICE" validate "$WORK/printed.yaml"

# 2. --dry-run: Redis has no password, so run without one.
unset REDIS_PASSWORD
sed -i '/password: \${REDIS_PASSWORD}/d; /sasl.password/d' "$WORK/job.yaml"
sed -i 's/    topics: \[clicks\]/    topics: [clicks]\n    properties: { client.id: ops-test }/' "$WORK/job.yaml"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --dry-run
expect_err 'dry run: source .* answers \(2 partitions, 1000 records retained\); sink Redis\[127.0.0.1:[0-9]+/0\] answers .* a run would plan batch 1'
[ ! -e "$WORK/ckpt" ] || fail "--dry-run created the checkpoint"
[ "$(rcli EXISTS buyers)" = 0 ] || fail "--dry-run wrote to Redis"
# After a real run, the dry run sees the commit.
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --dry-run
expect_err "checkpoint at batch 1; a run would plan batch 2"
expect_err "the sink's last committed batch is 1"
stop_redis
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --dry-run
expect_err 'gave up after 2 tries .*cannot connect to redis'
echo "ok: ops test"
