#!/usr/bin/env bash
# The Redis sink's own record decides on restart, and bad input is named:
#  1. the checkpoint is lost: the sink is ahead, the checkpoint is rolled
#     forward to its offsets, nothing is written twice;
#  2. Redis is flushed: the sink is behind, the job stops with a data-loss
#     error; with --recover-from-sink it re-processes from the sink's
#     (empty) record and the content is exact again;
#  3. records a template cannot fill go to the dead letters with the reason
#     (over a unix socket, in another database);
#  4. validate names the place of template and url mistakes; a password is
#     never printed.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic clicks:4 --topic odd:1
NEXT=0
produce() { # produce COUNT SEED: ids go on from the previous call
  "$SLUICE" produce --brokers "$BROKERS" --topic clicks --count "$1" \
    --first "$NEXT" --seed "$2" 2>"$WORK/produce.err" ||
    fail "produce: $(cat "$WORK/produce.err")"
  NEXT=$((NEXT + $1))
}
start_redis
cat >"$WORK/job.yaml" <<YAML
job: it-recovery
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 5000
pipeline:
  - parse: json
sink:
  redis:
    url: $REDIS_URL
    command: [ 'INCRBY records 1', 'SADD ids {id}' ]
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
YAML
check() { # check N: each of N records counted once
  [ "$(rcli GET records)" = "$1" ] || fail "records counter $(rcli GET records), expected $1"
  [ "$(rcli SCARD ids)" = "$1" ] || fail "$(rcli SCARD ids) ids, expected $1"
}
produce 20000 41
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
check 20000

# 1. Checkpoint lost: roll forward, not re-run.
rm -rf "$WORK/ckpt"
produce 10000 42
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err 'the sink holds batch [0-9]+, ahead of the checkpoint .*rolled the checkpoint forward'
check 30000

# 2. Redis lost its data.
rcli FLUSHALL >/dev/null
produce 10000 43
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err "the sink's last committed batch is 0 but the checkpoint .* committed batch [0-9]+: the sink lost data .*--recover-from-sink"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none --recover-from-sink
expect_err 'recover-from-sink: the sink holds batch 0; continuing from its offsets \(none: the starting offsets\)'
check 40000
# ... and from then on it is an ordinary job again.
produce 5000 44
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
check 45000

# 3. Records a template cannot fill become dead letters (this job talks
#    to Redis over its unix socket, in database 3).
printf '%s\n' '{"id":1,"user":"a"}' '{"id":2}' '{"id":3,"user":null}' \
  '{"id":4,"user":"b"}' | kcat -P -b "$BROKERS" -t odd 2>/dev/null || fail "kcat produce"
cat >"$WORK/odd.yaml" <<YAML
job: it-odd
source: { kafka: { brokers: $BROKERS, topics: [odd] } }
pipeline: [ { parse: json } ]
sink: { redis: { url: 'unix://$WORK/redis/redis.sock?db=3', command: 'SADD users {user}' } }
dead_letter: { file: { path: $WORK/dead } }
trigger: { available_now: true }
checkpoint: { dir: $WORK/odd-ckpt }
YAML
expect_exit 0 "$SLUICE" run "$WORK/odd.yaml" --progress none
[ "$(rcli -n 3 SMEMBERS users | sort | tr '\n' ' ')" = "a b " ] || fail "users: $(rcli -n 3 SMEMBERS users)"
[ "$(rcli EXISTS users)" = "0" ] || fail "database 0 got the users"
grep -h . "$WORK"/dead/part-* >"$WORK/dead.jsonl"
python3 - "$WORK/dead.jsonl" <<'PY'
import json, sys
dead = [json.loads(l) for l in open(sys.argv[1])]
got = sorted((json.loads(d["value"])["id"], d["reason"], d["topic"], d["offset"]) for d in dead)
want = [(2, "redis command: field 'user' is missing", "odd", 1),
        (3, "redis command: field 'user' is null", "odd", 2)]
assert got == want, got
print("ok: 2 dead letters with their reasons")
PY

# 4. Mistakes are named with their place; the password never shows.
bad() { # bad 'COMMAND' REGEX
  sed "s|command: \[ 'INCRBY records 1', 'SADD ids {id}' \]|command: '$1'|" \
    "$WORK/job.yaml" >"$WORK/bad.yaml"
  expect_exit 78 "$SLUICE" validate "$WORK/bad.yaml"
  expect_err "$2"
}
bad 'HINCRBY h {user}' 'bad.yaml:12:15: redis command \(column 1\): HINCRBY takes 3 arguments after the name, not 2'
bad 'INCRBY n {id' 'bad.yaml:12:24: redis command \(column 10\): unclosed placeholder'
bad 'FLUSHALL' "unknown or unsupported command 'FLUSHALL'"
sed "s|url: $REDIS_URL|url: redis://127.0.0.1:$REDIS_PORT/x|" "$WORK/job.yaml" >"$WORK/bad.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/bad.yaml"
expect_err 'bad.yaml:11:10: url: the path of the url is the database number'
# With the output fields known (select, window), placeholders are checked.
sed -e "s|  - parse: json|  - parse: json\n  - select: [id, user]|" \
  -e "s|'SADD ids {id}'|'SADD ids {idd}'|" "$WORK/job.yaml" >"$WORK/bad.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/bad.yaml"
expect_err "bad.yaml:13:46: redis command: the pipeline's output has no field 'idd'; did you mean 'id'\? \(fields: id, user\)"
# Wrong password against a server with one.
rcli CONFIG SET requirepass rightpw >/dev/null
sed "s|url: $REDIS_URL|url: redis://:s3cretpw@127.0.0.1:$REDIS_PORT/0|" "$WORK/job.yaml" >"$WORK/pw.yaml"
expect_exit 1 "$SLUICE" run "$WORK/pw.yaml" --progress none
expect_err 'redis 127.0.0.1:[0-9]+/0: authentication failed'
if grep -q s3cretpw "$WORK/err.txt" "$WORK/out.txt"; then fail "the password was printed"; fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -a rightpw --no-auth-warning CONFIG SET requirepass "" >/dev/null
echo "ok: redis recovery test"
