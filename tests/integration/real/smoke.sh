#!/usr/bin/env bash
# The suite's real Kafka broker answers, and a job reads a topic on it end
# to end: 20 000 records on 4 partitions through the file sink, each once.
source "$(dirname "$0")/../lib.bash" "$@"
use_real_broker
topic=it-real-smoke-$$
create_topic "$topic" 4
"$SLUICE" produce --brokers "$BROKERS" --topic "$topic" --count 20000 --seed 3 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
cat >"$WORK/job.yaml" <<YAML
job: it-real-smoke-$$
source:
  kafka: { brokers: $BROKERS, topics: [$topic], max_records_per_batch: 3000 }
sink:
  file: { path: $WORK/out }
trigger: { available_now: true }
checkpoint: { dir: $WORK/ckpt }
workers: 2
YAML
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
/usr/bin/python3 "$SRC/tests/integration/check_file_sink.py" "$WORK/out" 20000
echo "ok: a job on the real broker $BROKERS"
