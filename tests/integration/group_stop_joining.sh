#!/usr/bin/env bash
# Group mode, an instance stopped while it joins: its JoinGroup has been
# answered, its SyncGroup has not (the mock broker answers SyncGroup 20 s
# late), and it gets SIGTERM. librdkafka 2.0.2 aborts when such a
# consumer is destroyed (the cooperative-sticky assignor has no state
# before the first assignment); the instance must leave the group and
# exit 0 like any stopped instance. The test proves the aim: the
# JoinGroup answer is in the instance's log (librdkafka's cgrp debug) and
# no assignment is.
source "$(dirname "$0")/lib.bash" "$@"
start_mock --topic in:4
cat >"$WORK/job.yaml" <<YAML
job: it-group-stop-joining
source:
  kafka:
    brokers: $BROKERS
    topics: [in]
    group: { id: it-gsj }
    properties: { debug: cgrp }
sink: { console: {} }
trigger: { interval: 100ms }
YAML
mock_ctl delay SyncGroup 20000 1
FAIL_SHOW="$WORK/a.err"
"$SLUICE" run "$WORK/job.yaml" --set checkpoint.dir="$WORK/ckpt" --progress none \
  --log-level debug >"$WORK/a.out" 2>"$WORK/a.err" &
pid=$!
joined() { running $pid && grep -q "JoinGroup response: GenerationId" "$WORK/a.err"; }
wait_for 60 joined
grep -q "group: assigned" "$WORK/a.err" && fail "the instance was assigned partitions: the SyncGroup answer was not delayed"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ "$rc" = 0 ] || fail "the instance stopped while joining exited $rc, not 0"
grep -q "group: assigned" "$WORK/a.err" && fail "the instance was assigned partitions before it stopped: the aim missed"
grep -q "the membership consumer left before its first assignment" "$WORK/a.err" ||
  fail "no line about the membership consumer left before its first assignment"
echo "ok: an instance stopped between its JoinGroup and SyncGroup answers left the group and exited 0"
