#!/usr/bin/env bash
# The benchmark harness works end to end (`make bench` on a tiny data set;
# no speed is asserted here: speeds are measured by `make bench`). Every
# workload runs once, its answer is checked against the Python peer's by
# run.py itself, and the report, the chart and the JSON are written.
source "$(dirname "$0")/lib.bash" "$@"
BUILD="$(dirname "$SLUICE")"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
[ -x "$BUILD/tests/bench_consume" ] || fail "no $BUILD/tests/bench_consume"
cp "$ROOT/docs/benchmarks.md" "$WORK/report.md" || fail "no docs/benchmarks.md"
expect_exit 0 /usr/bin/python3 "$ROOT/tests/bench/run.py" --build "$BUILD" \
  --records 20000 --partitions 8 --runs 1 --startup-runs 1 --watermark-ms 10000 \
  --failpoint-calls 1000000 \
  --json "$WORK/bench.json" --report "$WORK/report.md" \
  --chart "$WORK/bench.png"
/usr/bin/python3 - "$WORK" "$ROOT/docs/benchmarks.md" <<'PY'
import json, sys
work, original = sys.argv[1], sys.argv[2]
r = json.load(open(work + "/bench.json"))
res = r["results"]
for w in ("W0", "W1", "W1-1w", "W1-b100k", "W2", "peer-W1", "peer-W2",
          "startup"):
    assert w in res, w
    assert res[w]["wall_s"] > 0 and res[w]["cpu_s"] > 0, (w, res[w])
    assert res[w]["peak_rss_bytes"] > 0, (w, res[w])
assert res["W1"]["out"] > 0 and res["W1"]["out"] == res["peer-W1"]["out"]
assert res["W2"]["out"] > 0 and res["W2"]["out"] == res["peer-W2"]["out"]
assert 0 < res["startup"]["first_commit_s"] <= res["startup"]["wall_s"], res["startup"]
fp = res["failpoints"]
assert fp["hits_w1"] > 0 and fp["points"] >= 30 and fp["plain_ns"] > 0, fp
assert "Crash points (tests/bench/failpoint.c)" in open(work + "/report.md").read()
assert r["facts"]["records"] == 20000 and r["facts"]["partitions"] == 8
text = open(work + "/report.md").read()
# The prose around the generated part is kept; the part is replaced.
head = open(original).read().split("<!-- bench results: begin -->")[0]
assert text.startswith(head), "the report's prose was not kept"
assert "| W1 |" in text and "20000 records" in text, text
png = open(work + "/bench.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
print("ok: every workload ran and agreed with the peer")
PY
[ $? -eq 0 ] || fail "bench results"
echo "ok: bench smoke test"
