#!/usr/bin/env bash
# The quickstart job of README runs to the end on the embedded cluster.
source "$(dirname "$0")/lib.bash" "$@"
unset KAFKA_BROKERS
cd "$WORK"
expect_exit 0 "$SLUICE" run "$SRC/examples/quickstart.yaml" \
  --set checkpoint.dir="$WORK/ckpt"
grep -q "^Batch: 5$" "$WORK/out.txt" || fail "no 'Batch: 5' header on stdout"
grep -q '"event":' "$WORK/out.txt" || fail "no record printed"
total=$(sed -n 's/.*batch [0-9]*: \([0-9]*\) records.*/\1/p' "$WORK/err.txt" |
  awk '{s += $1} END {print s + 0}')
[ "$total" = 50000 ] || fail "progress lines add up to $total records, not 50000"
expect_err "available-now: all 4 partitions processed"
# Run again on the same checkpoint: everything is committed, nothing to do.
expect_exit 0 "$SLUICE" run "$SRC/examples/quickstart.yaml" \
  --set checkpoint.dir="$WORK/ckpt"
if grep -q "^Batch:" "$WORK/out.txt"; then fail "second run re-printed batches"; fi
echo "ok: quickstart"
