#!/usr/bin/env bash
# The benchmark programs work (a tiny run; no speed is asserted here:
# speeds are measured by `make bench`). W0: the bare librdkafka consumer
# reads every record of the topic, once.
source "$(dirname "$0")/lib.bash" "$@"
BENCH="$(dirname "$SLUICE")/tests/bench_consume"
[ -x "$BENCH" ] || fail "no $BENCH"
start_mock --topic clicks:8
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 --seed 81 \
  2>/dev/null || fail "produce"
expect_exit 0 "$BENCH" "$BROKERS" clicks 20000
python3 - "$WORK/out.txt" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["workload"] == "W0" and r["records"] == 20000, r
assert r["bytes"] > 20000 * 50 and r["wall_s"] > 0 and r["peak_rss_bytes"] > 0, r
print("ok: W0 read", r["records"], "records")
PY
echo "ok: bench smoke test"
