# lib.sh - shared by the integration tests. Sourced, not run.
# Usage in a test: source "$(dirname "$0")/lib.bash" "$@"
set -euo pipefail
SLUICE=$(readlink -f "$1")
SRC=$(readlink -f "$2")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-it.XXXXXX")
MOCK_PID=""
BROKERS=""
REDIS_PID=""
REDIS_PORT=""

cleanup() {
  local status=$?
  # Whatever the test left running in the background (a job it meant to
  # stop later, when it failed before).
  local p
  for p in $(jobs -p); do
    [ "$p" = "$MOCK_PID" ] || kill -9 "$p" 2>/dev/null || true
  done
  if [ -n "$MOCK_PID" ]; then
    kill "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
  fi
  stop_redis
  # SLUICE_TEST_KEEP=1 keeps a failed test's files for its diagnosis.
  if [ "$status" != 0 ] && [ -n "${SLUICE_TEST_KEEP:-}" ]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# fail MESSAGE: prints it and exits 1. FAIL_SHOW may name log files
# (space-separated) whose last lines are printed too, for the diagnosis of
# a failure that leaves no other trace (WORK is removed at exit).
FAIL_SHOW=""
fail() {
  echo "FAIL: $*" >&2
  local f
  for f in $FAIL_SHOW; do
    [ -s "$f" ] && { echo "--- last lines of $f" >&2; tail -40 "$f" >&2; }
  done
  exit 1
}

# start_mock ARGS...: runs `sluice mock-kafka --control ARGS` in the
# background and sets BROKERS from the line it prints (waits for that line,
# bounded). Its stdout stays on fd 3, its control input on fd 4.
start_mock() {
  mkfifo "$WORK/mock.fifo" "$WORK/mock.ctl"
  exec 4<>"$WORK/mock.ctl"
  "$SLUICE" mock-kafka --control "$@" <&4 >"$WORK/mock.fifo" 2>"$WORK/mock.err" &
  MOCK_PID=$!
  exec 3<"$WORK/mock.fifo"
  read -r -t 30 -u 3 BROKERS || fail "mock-kafka printed no bootstrap servers: $(cat "$WORK/mock.err")"
  [ -n "$BROKERS" ] || fail "mock-kafka printed an empty line"
}

# mock_ctl COMMAND...: sends a control command to the mock (down N, up N,
# error API CODE [COUNT]; see sluice mock-kafka --help) and waits for its
# answer; fails unless the answer starts with "ok".
mock_ctl() {
  local reply
  echo "$*" >&4
  read -r -t 30 -u 3 reply || fail "mock-kafka did not answer '$*'"
  case $reply in
    ok*) ;;
    *) fail "mock-kafka: $reply" ;;
  esac
}

# wait_for SECONDS CMD...: polls CMD every 10 ms until it succeeds; fails
# after SECONDS.
wait_for() {
  local limit=$(($1 * 100)) i
  shift
  for ((i = 0; i < limit; i++)); do
    "$@" && return 0
    sleep 0.01
  done
  fail "timed out after $((limit / 100)) s waiting for: $*"
}

# Processes of a test (group mode runs several instances at once).
# alive PID: the process runs (or is stopped), it has not exited.
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# running PID...: none of them has exited (a condition for wait_for).
running() {
  local p
  for p; do alive "$p" || fail "process $p exited"; done
}
# stopped PID: the process is stopped (SIGSTOP, a failpoint's `stop`).
stopped() {
  alive "$1" || fail "process $1 exited before it stopped"
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]
}
# wait_secs SECONDS CMD...: wait_for by the clock, for a CMD that may
# itself take a while (it runs a client).
wait_secs() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "timed out waiting for: $*"
    sleep 0.2
  done
}

# input_topic TOPIC PARTITIONS COUNT SEED: creates TOPIC on the real
# broker, fills it with COUNT generated records and reads them back into
# $WORK/records.jsonl (the reference input of a test).
input_topic() {
  create_topic "$1" "$2"
  "$SLUICE" produce --brokers "$BROKERS" --topic "$1" --count "$3" --seed "$4" \
    2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
  kcat -b "$BROKERS" -C -t "$1" -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
    fail "kcat could not read the input back"
  [ "$(wc -l <"$WORK/records.jsonl")" = "$3" ] ||
    fail "kcat read $(wc -l <"$WORK/records.jsonl") records of $1, not $3"
}
# start_producer TOPIC RATE SEED: `sluice produce` writing RATE records/s
# into TOPIC in the background until stop_producer (pid_p), for tests
# whose input must keep arriving while instances come and go.
start_producer() {
  "$SLUICE" produce --brokers "$BROKERS" --topic "$1" --count 100000000 --rate "$2" \
    --seed "$3" 2>"$WORK/produce.err" &
  pid_p=$!
}
# stop_producer TOPIC: stops it (it must still be running) and reads TOPIC
# back into $WORK/records.jsonl, the test's reference input; INPUT_COUNT is
# its number of records.
stop_producer() {
  running $pid_p
  kill -TERM $pid_p
  wait $pid_p || true
  kcat -b "$BROKERS" -C -t "$1" -e -q -f '%s\n' >"$WORK/records.jsonl" 2>/dev/null ||
    fail "kcat could not read the input back"
  INPUT_COUNT=$(wc -l <"$WORK/records.jsonl")
}
# continuous_crash_and_join: the skeleton of the continuous group tests,
# with a producer running (pid_p): instances A and B of $WORK/job.yaml
# share its 12 partitions; B crashes by its crash point right after its
# third epoch's commit (proven: exit 137, the failpoint's line, streams
# run); once A owns all 12, C starts and must be assigned partitions and
# run streams. Leaves pid_a and pid_c set.
continuous_crash_and_join() {
  FAIL_SHOW="$WORK/a.err $WORK/b.err $WORK/c.err"
  start_instance a
  pid_a=$!
  start_instance b SLUICE_FAILPOINTS="batch.after_commit=crash@3"
  pid_b=$!
  b_exited() { running $pid_a $pid_p && ! alive $pid_b; }
  wait_for 180 b_exited
  crashed b batch.after_commit 3
  grep -q "continuous: [0-9]* streams over" "$WORK/b.err" || fail "B ran no streams"
  echo "B crashed after its third epoch"
  # A takes B's partitions once B's session has timed out
  a_all() { running $pid_a $pid_p && [ "$(owns_now a)" = 12 ]; }
  wait_for 120 a_all
  start_instance c
  pid_c=$!
  c_parts() {
    running $pid_a $pid_c $pid_p && has_parts c &&
      grep -q "continuous: [0-9]* streams over" "$WORK/c.err"
  }
  wait_for 120 c_parts
  echo "C was assigned partitions and runs streams"
}
# start_instance NAME [ENV=VALUE...]: one instance of $WORK/job.yaml in
# the background (group mode), its checkpoint $WORK/ckpt-NAME, its stderr
# $WORK/NAME.err; $! is its pid.
start_instance() {
  local name=$1
  shift
  env "$@" "$SLUICE" run "$WORK/job.yaml" --set checkpoint.dir="$WORK/ckpt-$name" \
    --progress none 2>"$WORK/$name.err" &
}

# group_redis_job TAG COUNT BATCH [SESSION_MS]: writes $WORK/job.yaml, a
# group-mode job (group TAG-g, input topic TAG-in, session timeouts of
# SESSION_MS, 6000 unless given) with a windowed `output: merge` pipeline
# into the test's Redis: revenue and orders per user per 10 s window
# (HINCRBYFLOAT, HINCRBY), the highest and lowest amount (ZADD GT, LT);
# BATCH records per batch at most. redis_at_end is then true once the
# sink's positions add up to COUNT (every partition at its end; a test
# whose input is still being written sets GROUP_REDIS_COUNT later).
group_redis_job() {
  local tag=$1
  GROUP_REDIS_TAG=$1
  GROUP_REDIS_COUNT=$2
  cat >"$WORK/job.yaml" <<YAML
job: $tag
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
    max_records_per_batch: $3
    group: { id: $tag-g }
    properties: { session.timeout.ms: "${4:-6000}", heartbeat.interval.ms: "500" }
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
}
redis_at_end() {
  local sum
  sum=$(rcli HGETALL "sluice:$GROUP_REDIS_TAG:commit" |
    awk 'NR % 2 == 1 { f = $0 } NR % 2 == 0 && f ~ /^o:/ { s += $0 } END { print s + 0 }')
  [ "$sum" = "$GROUP_REDIS_COUNT" ]
}
# group_kafka_job TAG BATCH SESSION_MS TRIGGER EOS [MORE]: writes
# $WORK/job.yaml, the group-mode job of the Kafka group tests (group
# TAG-g, input topic TAG-in): the stateless pipeline check_eos.py knows
# (parse, filter id % 10 != 7, cents, select) into the topic TAG-out,
# keyed by user, exactly once when EOS is true; at most BATCH records per
# batch (0: the source's default), sessions of SESSION_MS, trigger
# TRIGGER ("interval: 250ms", "continuous: 250ms"); MORE is appended
# (YAML, e.g. a dead_letter section). Then validates it.
group_kafka_job() {
  local tag=$1 batch=$2 session=$3 trigger=$4 eos=$5 more=${6:-}
  {
    cat <<YAML
job: $tag
source:
  kafka:
    brokers: $BROKERS
    topics: [$tag-in]
YAML
    [ "$batch" = 0 ] || echo "    max_records_per_batch: $batch"
    cat <<YAML
    group: { id: $tag-g }
    properties: { session.timeout.ms: "$session", heartbeat.interval.ms: "500" }
pipeline:
  - parse: json
  - filter: 'id % 10 != 7'
  - map: { cents: 'to_int(amount * 100 + 0.5)' }
  - select: [id, user, cents]
sink:
  kafka:
    brokers: $BROKERS
    topic: $tag-out
    key: '{user}'
YAML
    if [ "$eos" = true ]; then
      cat <<YAML
    exactly_once: true
    timeout: 30s
    properties: { linger.ms: "0" }
YAML
    fi
    echo "trigger: { $trigger }"
    echo "workers: 1"
    [ -z "$more" ] || echo "$more"
  } >"$WORK/job.yaml"
  "$SLUICE" validate "$WORK/job.yaml" >/dev/null 2>"$WORK/validate.err" ||
    fail "validate: $(cat "$WORK/validate.err")"
}

# crashed NAME POINT HIT: instance NAME (pid_NAME, exited) was killed by
# its crash point POINT at hit HIT (exit 137, the failpoint's line) after
# it had been assigned partitions.
crashed() {
  local p rc=0
  eval "p=\$pid_$1"
  wait "$p" || rc=$?
  [ "$rc" = 137 ] || fail "$1 exited $rc, not 137 (its crash point $2)"
  grep -q "^sluice: failpoint $2 fired: crash (hit $3)$" "$WORK/$1.err" ||
    fail "$1 died, but not at its crash point $2"
  has_parts "$1" || fail "$1 owned no partition"
}

# redis_exact: the final Redis content equals the one output.py computes
# from $WORK/records.jsonl (into $WORK/expect.json).
redis_exact() {
  /usr/bin/python3 "$SRC/tests/integration/crash/output.py" expect redis merge \
    "$WORK/records.jsonl" >"$WORK/expect.json" || fail "output.py could not compute the reference"
  /usr/bin/python3 "$SRC/tests/integration/crash/output.py" final redis merge \
    "$REDIS_PORT" >"$WORK/got.json"
  cmp -s "$WORK/expect.json" "$WORK/got.json" || {
    diff "$WORK/expect.json" "$WORK/got.json" | head -20 >&2
    fail "the final Redis content differs from the one computed from the input"
  }
}
# stop_all NAME...: SIGTERM to each named instance (pid_NAME), each must
# exit 0.
stop_all() {
  local n p rc
  for n in "$@"; do
    eval "p=\$pid_$n"
    kill -TERM "$p"
  done
  for n in "$@"; do
    eval "p=\$pid_$n"
    rc=0
    wait "$p" || rc=$?
    [ "$rc" = 0 ] || fail "$n exited $rc after SIGTERM, not 0"
  done
}
# owned_lines NAME: how many "this instance owns N" lines NAME logged;
# owns_now NAME: the N of its newest one.
owned_lines() { grep -c "this instance owns [0-9]*$" "$WORK/$1.err" || true; }
owns_now() { grep -o "this instance owns [0-9]*$" "$WORK/$1.err" | tail -1 | awk '{print $4}'; }
# has_parts NAME: NAME was assigned a partition at least once.
has_parts() { grep -q "group: assigned [1-9][0-9]* partition" "$WORK/$1.err"; }

# expect_exit CODE CMD...: runs CMD, fails unless it exits with CODE.
# Leaves its stdout in $WORK/out.txt and stderr in $WORK/err.txt.
expect_exit() {
  local want=$1 got=0
  shift
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || got=$?
  if [ "$got" != "$want" ]; then
    echo "--- stdout" >&2; cat "$WORK/out.txt" >&2
    echo "--- stderr" >&2; cat "$WORK/err.txt" >&2
    fail "expected exit $want, got $got: $*"
  fi
}

# expect_err REGEX: the last expect_exit's stderr matches REGEX.
expect_err() {
  grep -Eq -- "$1" "$WORK/err.txt" || {
    cat "$WORK/err.txt" >&2
    fail "stderr does not match: $1"
  }
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_redis: runs a real redis-server on 127.0.0.1 (REDIS_PORT, a free
# port unless already set) with its data in $WORK/redis, durable
# (appendonly yes, appendfsync always), and waits until it answers PING.
# Sets REDIS_URL; the server also listens on the unix socket
# $WORK/redis/redis.sock. Calling it again after stop_redis restarts the same
# server on the same port and data.
start_redis() {
  [ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
    --save "" --appendonly yes --appendfsync always \
    --unixsocket "$WORK/redis/redis.sock" --unixsocketperm 700 \
    --logfile "$WORK/redis/redis.log" --daemonize no &
  REDIS_PID=$!
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  for _ in $(seq 1 500); do # bounded: 10 s
    [ "$(rcli PING 2>/dev/null)" = "PONG" ] && return 0
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.02
  done
  fail "redis-server did not start: $(tail -5 "$WORK/redis/redis.log")"
}

# stop_redis: stops the server (SIGTERM: it finishes its writes).
stop_redis() {
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
}

# rcli ARGS...: redis-cli against the test's server.
rcli() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# use_real_broker: sets BROKERS to the suite's real Kafka broker (the ctest
# fixture kafka_broker, scripts/kafka-broker.sh), from the file that
# $SLUICE_TEST_KAFKA names; fails clearly when the fixture did not start or
# the broker does not answer.
use_real_broker() {
  local f=${SLUICE_TEST_KAFKA:-}
  [ -n "$f" ] || fail "SLUICE_TEST_KAFKA is not set: run this test through ctest (fixture kafka_broker)"
  [ -s "$f" ] || fail "no real broker: $f is missing (did the fixture kafka_broker.start fail?)"
  BROKERS=$(cat "$f")
  kcat -b "$BROKERS" -L -m 10 >/dev/null 2>"$WORK/use_real_broker.err" ||
    fail "the real broker at $BROKERS does not answer: $(cat "$WORK/use_real_broker.err")"
}

# create_topic NAME PARTITIONS: creates a topic on $BROKERS (a real broker)
# and waits until it exists.
create_topic() {
  /usr/bin/python3 - "$BROKERS" "$1" "$2" <<'PY' || fail "cannot create topic $1 on $BROKERS"
import sys
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
f = a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1)], operation_timeout=30)
f[sys.argv[2]].result(60)
PY
}

# wait_settled TOPIC: waits until no transaction on TOPIC ($BROKERS, a
# real broker) is still being completed (kafka_settled.py): only then does
# a read_committed reader that stops at the end (kcat -e) see every
# committed record.
wait_settled() {
  /usr/bin/python3 "$SRC/tests/integration/kafka_settled.py" "$BROKERS" "$1" 60 ||
    fail "topic $1 did not settle"
}

# committed DIR: the records a job's checkpoint in DIR has committed, as
# `sluice checkpoint show` says (the ends of its last batch, once that is
# committed; 0 before the first commit).
committed() {
  "$SLUICE" checkpoint show "$1" 2>/dev/null | awk '
    /^last planned batch: .*\(committed\)/ { ok = 1 }
    /^  [^ ]+\[[0-9]+\] +[0-9]+\.\.[0-9]+/ { split($2, r, "\\.\\."); sum += r[2] }
    END { print ok ? sum + 0 : 0 }'
}
committed_at_least() { [ "$(committed "$1")" -ge "$2" ]; }

# wait_committed SECONDS DIR N: polls (every 50 ms: each look runs sluice)
# until the checkpoint in DIR has committed N records; fails after SECONDS.
wait_committed() {
  local i
  for ((i = 0; i < $1 * 20; i++)); do
    committed_at_least "$2" "$3" && return 0
    sleep 0.05
  done
  fail "timed out after $1 s waiting for $3 committed records in $2 (at $(committed "$2"))"
}
