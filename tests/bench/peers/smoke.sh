#!/usr/bin/env bash
# The peers' benchmark harness works end to end (ctest bench.peers_smoke;
# no speed is asserted: `make bench-compare` measures): compare.py on a tiny
# data set on the suite's real broker, sluice's three jobs and those of every
# peer that is installed (make deps builds Kafka Streams; make bench-peers
# Flink and Spark too). Each peer's answer must be sluice's (compare.py
# checks it: the same number of W1 records, the same W2 hashes and totals),
# and the report must have a line for each.
source "$(dirname "$0")/../../integration/lib.bash" "$@"
use_real_broker
BUILD="$(dirname "$SLUICE")"
peers=${SLUICE_SMOKE_PEERS:-installed}
expect_exit 0 nice /usr/bin/python3 "$SRC/tests/bench/peers/compare.py" \
  --build "$BUILD" --brokers-file "$SLUICE_TEST_KAFKA" --peers "$peers" \
  --records 20000 --partitions 4 --runs 1 --watermark-ms 10000 --heap 1g \
  --latency-seconds 4 --latency-warmup 1 --latency-rate 2000 \
  --json "$WORK/peers.json" --report "$WORK/report.md"
/usr/bin/python3 - "$WORK" <<'PY' || fail "peers results"
import json, sys
work = sys.argv[1]
doc = json.load(open(work + "/peers.json"))
res, errs, peers = doc["results"], doc["errors"], doc["facts"]["peers"]
assert not errs, errs
for w in ("W1", "W1-kafka", "W2"):
    assert res[w]["out"] > 0 and res[w]["wall_s"] > 0, (w, res[w])
    assert res[w]["first_output_s"] is not None, (w, res[w])
# W0, the floor on the same broker, read every record
assert res["W0"]["out"] == 20004 and res["W0"]["cpu_s"] > 0, res["W0"]
# 20000 records of which about a tenth are buys; W2: 1000 users' windows
assert 1500 < res["W1"]["out"] < 2500, res["W1"]["out"]
assert res["W1-kafka"]["out"] == res["W1"]["out"]
assert res["W2"]["out"] > 1000 and res["W2"]["digest"][0] == 20000, res["W2"]
lat = res["latency"]["targets"]
for t in ["kafka-alo"] + peers:
    assert lat[t]["measured"] > 0 and lat[t]["p50_ms"] > 0, (t, lat.get(t))
text = open(work + "/report.md").read()
assert "| W0 (floor; × over W1) | bare consumer |" in text, text
assert "| sluice | %.2f |" % lat["kafka-alo"]["p50_ms"] in text, text
for p in peers:
    jobs = ("W1-kafka", "W2") if p == "kstreams" else ("W1", "W2")
    for j in jobs:
        x = res["%s-%s" % (p, j)]
        ref = res[j]
        assert x["out"] == ref["out"], (p, j, x["out"], ref["out"])
        if j == "W2":
            assert x["digest"][0] == ref["digest"][0] == 20000, (p, x, ref)
            assert abs(x["digest"][1] - ref["digest"][1]) < 1e-3, (p, x, ref)
        assert x["peak_rss_bytes"] > 0 and x["cpu_s"] > 0, (p, j, x)
        assert "| %s | %s |" % (j, p) in text, (p, j)
print("ok: sluice and %s agree" % (", ".join(peers) or "no peer (none installed)"))
PY
echo "ok: peers smoke test"
