#!/usr/bin/env bash
# Every job in examples/ is valid and passes its own tests: block; each
# also runs end to end on its embedded cluster.
source "$(dirname "$0")/lib.bash" "$@"
unset KAFKA_BROKERS
n=0
for f in "$SRC"/examples/*.yaml; do
  name=$(basename "$f" .yaml)
  grep -q '^tests:' "$f" || fail "$name has no tests: block"
  expect_exit 0 "$SLUICE" validate "$f"
  expect_exit 0 "$SLUICE" test "$f"
  grep -q ' passed, 0 failed$' "$WORK/out.txt" || fail "$name: $(cat "$WORK/out.txt")"
  # End to end, with outputs and checkpoints under $WORK.
  sets=(--set "checkpoint.dir=$WORK/$name-ckpt")
  sinkdef=$(grep -A1 '^sink:' "$f")
  grep -q '  file: { path: ./out/' <<<"$sinkdef" && sets+=(--set "sink.file.path=$WORK/$name-out")
  grep -q '^dead_letter:' "$f" && sets+=(--set "dead_letter.file.path=$WORK/$name-dead")
  if grep -q '^  redis:' "$f"; then
    [ -n "$REDIS_PID" ] || start_redis
    sets+=(--set "sink.redis.url=$REDIS_URL")
  fi
  (cd "$WORK" && expect_exit 0 "$SLUICE" run "$f" "${sets[@]}" --progress json)
  n=$((n + 1))
done
[ "$n" -ge 5 ] || fail "only $n examples"
# top-pages wrote at most 3 pages per minute, the most viewed first.
python3 - "$SRC/tests/integration" "$WORK/top_pages-out" <<'PY'
import json, os, sys
sys.path.insert(0, sys.argv[1])
from check_file_sink import unseal
d = sys.argv[2]
m = os.path.join(d, "_manifest")
per = {}
for b in sorted(int(x) for x in os.listdir(m) if x.isdigit()):
    for f in unseal(os.path.join(m, str(b)))["files"]:
        for line in open(os.path.join(d, f["name"])):
            r = json.loads(line)
            per.setdefault(r["window_start"], []).append(r["views"])
assert len(per) >= 5, per.keys()
for w, views in per.items():
    assert 1 <= len(views) <= 3 and views == sorted(views, reverse=True), (w, views)
print("ok: top pages:", len(per), "minutes ranked")
PY
# revenue_to_redis: the per-minute hashes add up to the running totals,
# and every key expires.
python3 - "$REDIS_PORT" <<'PY'
import collections, subprocess, sys
def cli(*a):
    return subprocess.run(["redis-cli", "-p", sys.argv[1], "--raw", *a],
                          check=True, capture_output=True, text=True).stdout.split("\n")[:-1]
minutes = [k for k in cli("KEYS", "revenue:1*")]
assert len(minutes) >= 5, minutes
per_user = collections.Counter()
for k in minutes:
    kv = cli("HGETALL", k)
    for i in range(0, len(kv), 2):
        per_user[kv[i]] += int(kv[i + 1])
kv = cli("HGETALL", "revenue:total")
total = {kv[i]: int(kv[i + 1]) for i in range(0, len(kv), 2)}
assert total == dict(per_user), "totals differ from the per-minute sums"
for k in minutes + ["revenue:total"]:
    ttl = int(cli("PTTL", k)[0])
    assert 0 < ttl <= 7 * 86400 * 1000, (k, ttl)
print(f"ok: revenue_to_redis: {len(minutes)} minutes, {len(total)} users")
PY
# A failing test prints a diff and exits 1.
sed 's/revenue: 15.5, orders: 2/revenue: 15, orders: 2/' \
  "$SRC/examples/revenue_per_user.yaml" >"$WORK/broken.yaml"
expect_exit 1 "$SLUICE" test "$WORK/broken.yaml"
grep -q '^FAIL .*sums the buys' "$WORK/out.txt" || fail "no FAIL line"
grep -q -- '- {"window_start":0,"window_end":10000,"user":"a","revenue":15,' "$WORK/out.txt" || fail "no - line in the diff"
grep -q -- '+ {"window_start":0,"window_end":10000,"user":"a","revenue":15.5,' "$WORK/out.txt" || fail "no + line in the diff"
grep -q '^2 passed, 1 failed$\|^1 passed, 1 failed$' "$WORK/out.txt" || fail "summary: $(tail -1 "$WORK/out.txt")"
# An expression error is reported with the file position and the column
# in the expression.
sed "s/filter: 'event == \"buy\" \&\& amount > 0'/filter: 'event == \"buy\" \&\& amount >'/" \
  "$SRC/examples/revenue_per_user.yaml" >"$WORK/badexpr.yaml"
expect_exit 78 "$SLUICE" validate "$WORK/badexpr.yaml"
expect_err "badexpr.yaml:[0-9]+:[0-9]+: filter: column [0-9]+: "
echo "ok: $n examples"
