#!/usr/bin/env bash
# The group-mode benchmark harness works end to end (ctest
# bench.group_smoke; no speed is asserted: `make bench-group` measures):
# tests/bench/group.py on a tiny input on the suite's real broker, one and
# two instances of one group. group.py itself checks each run's answer (a
# read_committed count of the output equal to W1's) and that every
# instance exits 0 after SIGTERM; this checks that both runs and the floor
# are reported.
source "$(dirname "$0")/../integration/lib.bash" "$@"
use_real_broker
BUILD="$(dirname "$SLUICE")"
expect_exit 0 /usr/bin/python3 "$SRC/tests/bench/group.py" --build "$BUILD" \
  --brokers-file "$SLUICE_TEST_KAFKA" --records 20000 --partitions 4 --runs 1 \
  --instances 1,2 --json "$WORK/group.json" --report "$WORK/report.md"
/usr/bin/python3 - "$WORK" <<'PY' || fail "group results"
import json, sys
work = sys.argv[1]
res = json.load(open(work + "/group.json"))["results"]
assert res["W0"][0]["records_per_s"] > 0, res["W0"]
for n in ("1", "2"):
    m = res[n][0]
    assert m["instances"] == int(n) and m["out"] > 1500 and m["wall_s"] > 0, m
    assert m["cpu_s"] > 0 and m["peak_rss_bytes"] > 0, m
assert res["1"][0]["out"] == res["2"][0]["out"]
text = open(work + "/report.md").read()
for row in ("| W0 (bare consumer", "| 1 instance |", "| 2 instances |"):
    assert row in text, (row, text)
print("ok: 1 and 2 instances wrote %d records each" % res["1"][0]["out"])
PY
echo "ok: group benchmark smoke test"
