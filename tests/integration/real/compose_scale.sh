#!/usr/bin/env bash
# `docker compose up --scale sluice=3`, without a Docker engine: three
# processes run the compose deployment's own job file
# (docker/jobs/revenue.yaml) with the environment compose gives each
# container (KAFKA_BROKERS, REDIS_URL, METRICS_LISTEN, and HOSTNAME, which
# Docker sets per container), against the real broker and a real Redis.
# Only the topics, the group id and the checkpoint's parent folder are
# set here (--set): this test shares the broker. It checks what a scaled
# deployment needs: each container's checkpoint is its own (the file
# derives it from HOSTNAME), the three instances share the 8 partitions
# (/metrics of each, every partition owned once, each instance /ready),
# and the final Redis content (revenue and orders per user per minute,
# revenue per user) equals the one computed from the input records.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
start_redis
JOB="$SRC/docker/jobs/revenue.yaml"
COUNT=30000
tag=it-real-csc-$$
input_topic "$tag-in" 8 $COUNT 31

# the checkpoint folder the file gives each container
for h in 3f2a9c1d 77b0e4aa; do
  KAFKA_BROKERS=$BROKERS REDIS_URL=$REDIS_URL HOSTNAME=$h \
    "$SLUICE" validate "$JOB" --print >"$WORK/print.$h" 2>"$WORK/validate.err" ||
    fail "validate $JOB: $(cat "$WORK/validate.err")"
  grep -q "^  dir: /var/lib/sluice/checkpoints/revenue-$h$" "$WORK/print.$h" ||
    fail "the checkpoint of container $h is not its own: $(grep 'dir:' "$WORK/print.$h")"
done

FAIL_SHOW="$WORK/s1.err $WORK/s2.err $WORK/s3.err"
for i in 1 2 3; do
  port=$(free_port)
  eval "mport_s$i=$port"
  KAFKA_BROKERS=$BROKERS REDIS_URL=$REDIS_URL HOSTNAME=sluice-$i METRICS_LISTEN=127.0.0.1:$port \
    "$SLUICE" run "$JOB" --set "source.kafka.topics=[$tag-in]" --set "source.kafka.group.id=$tag-g" \
    --set "dead_letter.kafka.topic=$tag-dead" --set checkpoint.dir="$WORK/ckpt-s$i" \
    --progress none 2>"$WORK/s$i.err" &
  eval "pid_s$i=\$!"
done

# assigned NAME: NAME's sluice_group_assigned_partitions
assigned() {
  local p
  eval "p=\$mport_$1"
  curl -sf "http://127.0.0.1:$p/metrics" | awk '$1 == "sluice_group_assigned_partitions" { print $2 }'
}
shared() {
  running $pid_s1 $pid_s2 $pid_s3 || return 1
  local n a sum=0
  for n in s1 s2 s3; do
    a=$(assigned $n)
    [ "${a:-0}" -ge 1 ] || return 1
    sum=$((sum + a))
  done
  [ "$sum" = 8 ]
}
wait_for 120 shared
for n in s1 s2 s3; do
  eval "p=\$mport_$n"
  curl -sf "http://127.0.0.1:$p/ready" >/dev/null || fail "$n owns partitions but is not ready"
done
echo "the 8 partitions are shared: $(assigned s1), $(assigned s2), $(assigned s3)"

GROUP_REDIS_TAG=revenue
GROUP_REDIS_COUNT=$COUNT
done_all() { running $pid_s1 $pid_s2 $pid_s3 && redis_at_end; }
wait_secs 300 done_all
stop_all s1 s2 s3
for n in s1 s2 s3; do
  [ -e "$WORK/ckpt-$n/commits" ] || fail "$n committed nothing of its own"
done

/usr/bin/python3 - "$WORK/records.jsonl" "$REDIS_PORT" <<'PY' || fail "the Redis content is not the expected one"
import collections, json, sys
import redis
want = collections.defaultdict(dict)
rev = collections.Counter()
orders = collections.Counter()
tot = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event"] != "buy":
        continue
    c = int(r["amount"] * 100 + 0.5)
    s = r["ts"] // 60000 * 60000
    rev[(s, r["user"])] += c
    orders[(s, r["user"])] += 1
    tot[r["user"]] += c
for (s, u), c in rev.items():
    want["revenue:%d" % s][u] = str(c)
    want["orders:%d" % s][u] = str(orders[(s, u)])
want["revenue:total"] = {u: str(c) for u, c in tot.items()}
db = redis.Redis(host="127.0.0.1", port=int(sys.argv[2]), decode_responses=True)
got = {k: db.hgetall(k) for k in db.scan_iter(count=1000) if not k.startswith("sluice:")}
want = dict(want)
if got != want:
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            print("key %s: got %s, want %s" % (k, str(got.get(k))[:200], str(want.get(k))[:200]),
                  file=sys.stderr)
            break
    sys.exit(1)
print("ok: %d keys as computed from %s" % (len(want), sys.argv[1]))
PY
echo "ok: the compose job scaled to 3 instances: the partitions were shared and the Redis content is exact"
