#!/usr/bin/env bash
# The HTTP endpoint during a run: /health answers at once; /ready is 503
# while the sink (Redis, not started yet) cannot be reached and flips to
# 200 once it can; /metrics is valid Prometheus text whose counters equal
# what was processed; /progress parses and its counts add up to the same.
source "$(dirname "$0")/lib.bash" "$@"
N=20000
start_mock --topic clicks:4
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count $N --seed 51 \
  2>/dev/null || fail "produce"
REDIS_PORT=$(free_port)
MPORT=$(free_port)
cat >"$WORK/job.yaml" <<YAML
job: it-metrics
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 3000
pipeline:
  - parse: json
  - filter: 'event != "view"'
sink:
  redis:
    url: redis://127.0.0.1:$REDIS_PORT/0
    command: 'INCRBY out 1'
    retry: { backoff: 20ms, max_backoff: 100ms }
trigger: { interval: 100ms }
checkpoint: { dir: $WORK/ckpt }
metrics: { listen: 127.0.0.1:$MPORT, history: 1000 }
workers: 2
YAML
"$SLUICE" run "$WORK/job.yaml" --progress none 2>"$WORK/run.err" &
pid=$!
get() { # get PATH: prints the status on a line, then the body
  python3 - "http://127.0.0.1:$MPORT$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(r.status); print(r.read().decode(), end="")
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode(), end="")
except OSError:
    print(0)
PY
}
status() { get "$1" >"$WORK/resp"; head -1 "$WORK/resp"; }
wait_for() { # wait_for PATH STATUS: bounded, 20 s
  for _ in $(seq 1 400); do
    [ "$(status "$1")" = "$2" ] && return 0
    kill -0 "$pid" 2>/dev/null || fail "sluice exited: $(cat "$WORK/run.err")"
    sleep 0.05
  done
  fail "$1 never answered $2: $(get "$1")"
}
wait_for /health 200
[ "$(status /ready)" = "503" ] || fail "/ready before the sink is reachable: $(get /ready)"
start_redis
wait_for /ready 200
# Wait until every record went through, by the metrics themselves.
for _ in $(seq 1 400); do
  get /metrics >"$WORK/resp"
  grep -q "^sluice_source_records_total{source=\"kafka\"} $N\$" "$WORK/resp" && break
  sleep 0.05
done
get /metrics | tail -n +2 >"$WORK/metrics.txt"
get /progress | tail -n +2 >"$WORK/progress.json"
# Debian's python3, which has python3-prometheus-client.
/usr/bin/python3 - "$WORK" $N "$(rcli GET out)" <<'PY'
import json, sys
from prometheus_client.parser import text_string_to_metric_families
work, n, redis_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = open(f"{work}/metrics.txt").read()
fam = {f.name: f for f in text_string_to_metric_families(text)}
def one(name, **labels):
    for s in fam[name].samples:
        if s.name in (name, name + "_total") and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))
read = one("sluice_source_records", source="kafka")
written = one("sluice_sink_records", sink="redis")
filtered = one("sluice_operator_records_dropped", operator="filter")
assert read == n, (read, n)
assert written + filtered == n, (written, filtered)
assert written == redis_out, (written, redis_out)
assert one("sluice_ready") == 1
assert one("sluice_sink_retries", sink="redis") >= 1, "no retry counted while Redis was down"
assert one("sluice_source_retries", source="kafka") == 0
parts = [s for s in fam["sluice_partition_committed_offset"].samples]
assert len(parts) == 4 and sum(s.value for s in parts) == n, parts
assert all(s.value == 0 for s in fam["sluice_partition_lag_records"].samples)
h = {s.labels.get("le"): s.value for s in fam["sluice_batch_duration_seconds"].samples
     if s.name.endswith("_bucket")}
batches = one("sluice_batches")
assert h["+Inf"] == batches > 0, (h, batches)
assert one("process_resident_memory_bytes") > 1 << 20
busy = [s.value for s in fam["sluice_worker_busy_seconds"].samples]
assert len(busy) == 2 and sum(busy) > 0, busy
prog = json.loads(open(f"{work}/progress.json").read())
assert sum(p["numInputRows"] for p in prog) == n
assert sum(p["sink"]["numOutputRows"] for p in prog) == written
assert sum(p["pipeline"]["numFilteredRows"] for p in prog) == filtered
assert len(prog) == batches, (len(prog), batches)
print(f"ok: metrics: {int(read)} read, {int(written)} written, {int(filtered)} filtered, {int(batches)} batches")
PY
[ "$(status /nothing)" = "404" ] || fail "/nothing is not 404"
kill -TERM "$pid"
wait "$pid" || fail "sluice did not stop cleanly: $(tail -3 "$WORK/run.err")"
echo "ok: metrics test"
