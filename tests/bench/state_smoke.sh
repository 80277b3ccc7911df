#!/usr/bin/env bash
# The window-state benchmark harness works end to end (ctest
# bench.state_smoke; no speed is asserted: `make bench-state` measures):
# tests/bench/state.py on 50 000 keys on the suite's real broker, one
# round. state.py itself requires that the restart restored every key;
# this checks that the figures are there and the report has its rows.
source "$(dirname "$0")/../integration/lib.bash" "$@"
use_real_broker
BUILD="$(dirname "$SLUICE")"
expect_exit 0 /usr/bin/python3 "$SRC/tests/bench/state.py" --build "$BUILD" \
  --brokers-file "$SLUICE_TEST_KAFKA" --keys 50000 --partitions 4 --runs 1 \
  --json "$WORK/state.json" --report "$WORK/report.md"
/usr/bin/python3 - "$WORK" <<'PY' || fail "state results"
import json, sys
work = sys.argv[1]
r = json.load(open(work + "/state.json"))["results"][0]
assert r["keys"] == 50000, r
assert r["snapshot_s"] > 0 and r["restore_s"] > 0 and r["files_bytes"] > 0, r
assert r["run1_rss"] > 0 and r["run2_rss"] > 0, r
text = open(work + "/report.md").read()
for row in ("| snapshot of the last batch, s |", "| restore on restart, s |",
            "| run 1: peak RSS per million keys, MB |"):
    assert row in text, (row, text)
print("ok: %d keys, snapshot %.3f s, restore %.3f s" % (r["keys"], r["snapshot_s"], r["restore_s"]))
PY
echo "ok: state benchmark smoke test"
