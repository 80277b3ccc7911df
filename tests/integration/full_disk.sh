#!/usr/bin/env bash
# A real full disk and a real read-only file system: the file sink's output
# and the checkpoint on a small tmpfs. A run that fills it must stop with a
# message naming the file and "No space left on device", commit nothing
# half-written, and leave the checkpoint readable; after the space is
# grown (remount), a restart ends with exactly the input. The same with the
# file system remounted read-only ("Read-only file system").
#
# Mounting needs root (CAP_SYS_ADMIN). Without it the test says so and is
# skipped (exit 77, ctest's SKIP_RETURN_CODE); the same faults are injected
# without a mount by it.io_faults.
source "$(dirname "$0")/lib.bash" "$@"
MNT="$WORK/mnt"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=4m,mode=0700 sluice-test "$MNT" 2>"$WORK/mount.err"; then
  echo "skipped: cannot mount a tmpfs here ($(cat "$WORK/mount.err")); it.io_faults injects the same errors"
  exit 77
fi
unmount() { umount "$MNT" 2>/dev/null || true; }
trap 'unmount; cleanup' EXIT

start_mock --topic clicks:4
# About 9 MB of records: more than the 4 MB file system holds.
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 80000 --seed 3 2>/dev/null ||
  fail "produce"
cat >"$WORK/job.yaml" <<YAML
job: it-full-disk
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 10000
    task_max_records: 2500
sink:
  file: { path: $MNT/out, retry: { attempts: 2, backoff: 10ms } }
trigger: { available_now: true }
checkpoint: { dir: $MNT/ckpt }
workers: 2
YAML

# 1. The disk fills up.
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err "$MNT/(out|ckpt)/[^:]*: .*No space left on device"
committed=$(ls "$MNT/ckpt/commits" 2>/dev/null | grep -c '^[0-9]*$' || true)
echo "the disk filled after $committed committed batches"
[ "$committed" -lt 8 ] || fail "all 8 batches fit on a 4 MB disk: the test did not fill it"
expect_exit 0 "$SLUICE" checkpoint show "$MNT/ckpt"
[ -z "$(ls "$MNT/out/_manifest" | grep -v '^[0-9]*$')" ] || fail "a half-written manifest is left"
# Every batch the sink lists is whole: each listed file has the records
# its manifest counts, batches 1..K, no row twice (output.py checks).
if [ "$(ls "$MNT/out/_manifest" | grep -c '^[0-9]*$')" -gt 0 ]; then
  /usr/bin/python3 "$SRC/tests/integration/crash/output.py" final file stateless "$MNT/out" \
    >/dev/null || fail "the committed batches are not whole"
fi

# 2. More space: the restart ends exactly.
mount -o remount,size=64m "$MNT" || fail "remount with more space"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
python3 "$SRC/tests/integration/check_file_sink.py" "$MNT/out" 80000

# 3. Read-only: new records, the file system remounted read-only.
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count 20000 --first 80000 --seed 3 \
  2>/dev/null || fail "produce"
before=$(ls "$MNT/ckpt/commits" | grep -c '^[0-9]*$')
mount -o remount,ro "$MNT" || fail "remount read-only"
expect_exit 1 "$SLUICE" run "$WORK/job.yaml" --progress none
expect_err "$MNT/(out|ckpt)[^:]*: .*Read-only file system"
[ "$(ls "$MNT/ckpt/commits" | grep -c '^[0-9]*$')" = "$before" ] || fail "a batch was committed on a read-only disk"
mount -o remount,rw "$MNT" || fail "remount read-write"
expect_exit 0 "$SLUICE" run "$WORK/job.yaml" --progress none
python3 "$SRC/tests/integration/check_file_sink.py" "$MNT/out" 100000
echo "ok: full and read-only disks stop the job cleanly; restarts are exact"
