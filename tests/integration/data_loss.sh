#!/usr/bin/env bash
# Records the job still needs were deleted by retention (the embedded
# cluster keeps a few MB per partition): by default the job stops with a
# clear error; with fail_on_data_loss: false it warns, counts and goes on.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic lossy:1
"$SLUICE" produce --brokers "$BROKERS" --topic lossy --count 120000 2>/dev/null
cat >"$WORK/job.yaml" <<YAML
job: it-loss
source:
  kafka:
    brokers: $BROKERS
    topics: [lossy]
    starting_offsets: { lossy: { 0: 0 } }
    max_records_per_batch: 20000
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
YAML
expect_exit 1 "$SLUICE" run "$WORK/job.yaml"
expect_err "data loss on lossy\[0\]: offsets 0\.\.[0-9]+ .* no longer in Kafka"
expect_err "fail_on_data_loss: false"
[ ! -e "$WORK/out/_manifest/1" ] || fail "a batch with lost records was committed"

expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress json \
  --set source.kafka.fail_on_data_loss=false
expect_err "skipping [0-9]+ records deleted by retention"
low=$(python3 - "$WORK/err.txt" <<'PY'
import json, sys
lost = sum(json.loads(l)["sources"][0]["lostRows"] for l in open(sys.argv[1]) if l.startswith("{"))
print(lost)
PY
)
[ "$low" -gt 0 ] || fail "no lost rows counted in progress"
# One partition: offset == id. Everything from the low watermark on is
# there exactly once.
python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 120000 "$low"
echo "ok: data loss ($low records lost to retention)"
