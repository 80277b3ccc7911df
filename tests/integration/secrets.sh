#!/usr/bin/env bash
# Secrets never show: a real redis-server with --requirepass, a job whose
# Redis url carries the password through ${VAR} (and the `password` key
# another), a Kafka source with sasl.password through ${VAR}. validate
# --print, a successful run (with --log-level debug, /metrics and /progress
# scraped while it runs), a run with a wrong Redis password (it must fail
# naming the sink), a run with a wrong password in the url only, and a
# SASL run against the embedded cluster, which fails: none of the secret
# strings appears in anything they printed or logged.
source "$(dirname "$0")/lib.bash" "$@"
rand() { /usr/bin/python3 -c 'import secrets; print(secrets.token_hex(12))'; }
# Passwords with an '@' (not %-encoded, which the url parser allows: the
# last '@' ends them); each half is searched for on its own as well.
PW="S3cr3tPw$(rand)@$(rand)"
BAD="WrongPw$(rand)"
KPW="KafkaPw$(rand)"
URLPW="UrlPw$(rand)@$(rand)"
SECRETS=("$PW" "${PW%@*}" "${PW#*@}" "$BAD" "$KPW" "$URLPW" "${URLPW%@*}" "${URLPW#*@}")
pats=()
for s in "${SECRETS[@]}"; do pats+=(-e "$s"); done
export REDIS_PW=$PW REDIS_BAD=$BAD KAFKA_PW=$KPW REDIS_URLPW=$URLPW
N=5000
start_mock --topic clicks:2
"$SLUICE" produce --brokers "$BROKERS" --topic clicks --count $N --seed 9 \
  2>"$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"

# A Redis that wants the password.
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
  --save "" --appendonly yes --appendfsync always --requirepass "$PW" \
  --logfile "$WORK/redis/redis.log" --daemonize no &
REDIS_PID=$!
rauth() { REDISCLI_AUTH=$PW redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --no-auth-warning "$@"; }
wait_for 10 bash -c "[ \"\$(REDISCLI_AUTH='$PW' redis-cli -h 127.0.0.1 -p $REDIS_PORT --no-auth-warning PING 2>/dev/null)\" = PONG ]"
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" SET x 1 2>&1 | grep -q NOAUTH ||
  fail "redis-server does not require the password"

MPORT=$(free_port)
# job FILE URL [EXTRA REDIS KEYS]
job() {
  cat >"$1" <<YAML
job: it-secrets
source:
  kafka:
    brokers: $BROKERS
    topics: [clicks]
    max_records_per_batch: 1000
    connect_timeout: 3s
pipeline:
  - parse: json
sink:
  redis:
    url: '$2'
    command: 'INCRBY out 1'
    timeout: 5s
    retry: { attempts: 2, backoff: 10ms, max_backoff: 10ms }
    ${3:-}
trigger: { interval: 100ms }
checkpoint: { dir: $WORK/ckpt }
metrics: { listen: 127.0.0.1:$MPORT }
workers: 2
YAML
}
job "$WORK/good.yaml" 'redis://:${REDIS_PW}@127.0.0.1:'"$REDIS_PORT"'/0'
job "$WORK/bad.yaml" 'redis://:${REDIS_PW}@127.0.0.1:'"$REDIS_PORT"'/0' 'password: ${REDIS_BAD}'
job "$WORK/badurl.yaml" 'redis://:${REDIS_URLPW}@127.0.0.1:'"$REDIS_PORT"'/0'
# The Kafka source with SASL; the password only through ${VAR}.
job "$WORK/sasl.yaml" 'redis://:${REDIS_PW}@127.0.0.1:'"$REDIS_PORT"'/0'
/usr/bin/python3 - "$WORK/sasl.yaml" <<'PY'
import sys
p = sys.argv[1]
t = open(p).read().replace(
    "    connect_timeout: 3s\n",
    "    connect_timeout: 3s\n"
    "    properties:\n"
    "      security.protocol: sasl_plaintext\n"
    "      sasl.mechanism: PLAIN\n"
    "      sasl.username: sluice\n"
    "      sasl.password: ${KAFKA_PW}\n"
    "      debug: security,broker,conf\n")
open(p, "w").write(t)
PY
grep -q 'sasl.password: ${KAFKA_PW}' "$WORK/sasl.yaml" || fail "sasl job not written"

# validate --print, each job.
for j in good bad badurl sasl; do
  "$SLUICE" validate "$WORK/$j.yaml" --print >"$WORK/print.$j.out" 2>"$WORK/print.$j.err" ||
    fail "validate $j: $(cat "$WORK/print.$j.err")"
done
grep -q '\*\*\*\*\*\*\*\*' "$WORK/print.good.out" || fail "validate --print shows no masked value"
grep -q 'sasl.password' "$WORK/print.sasl.out" || fail "validate --print does not show sasl.password"
# An invalid job whose error is about a secret key's value.
job "$WORK/invalid.yaml" 'redis://:${REDIS_PW}@127.0.0.1:notaport/0'
"$SLUICE" validate "$WORK/invalid.yaml" >"$WORK/invalid.out" 2>"$WORK/invalid.err" && fail "an invalid url validated"
[ -s "$WORK/invalid.err" ] || fail "no message for the invalid url"

# The successful run, scraped while it runs.
"$SLUICE" run "$WORK/good.yaml" --progress json --log-level debug \
  >"$WORK/good.out" 2>"$WORK/good.err" &
pid=$!
done_all() {
  kill -0 "$pid" 2>/dev/null || fail "sluice exited: $(tail -5 "$WORK/good.err")"
  [ "$(rauth GET out 2>/dev/null)" = "$N" ]
}
wait_for 60 done_all
# The counters move after the commit that wrote the output: wait for them.
counted() {
  kill -0 "$pid" 2>/dev/null || fail "sluice exited: $(tail -5 "$WORK/good.err")"
  curl -sf "http://127.0.0.1:$MPORT/metrics" | grep -q "^sluice_sink_records_total{sink=\"redis\"} $N\$"
}
wait_for 10 counted
for p in metrics progress health ready; do
  /usr/bin/python3 - "http://127.0.0.1:$MPORT/$p" >"$WORK/scrape.$p" <<'PY' || fail "GET /$p"
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
PY
done
grep -q "^sluice_sink_records_total{sink=\"redis\"} $N\$" "$WORK/scrape.metrics" ||
  fail "metrics do not show the $N records: $(grep sink_records "$WORK/scrape.metrics")"
grep -q numInputRows "$WORK/scrape.progress" || fail "/progress is empty"
kill -TERM "$pid"
wait "$pid" || fail "the good run did not stop cleanly: $(tail -5 "$WORK/good.err")"
echo "ok: the run with the password wrote $N records"

# Wrong password by the `password` key: fails, naming the sink.
"$SLUICE" run "$WORK/bad.yaml" --progress json --log-level debug \
  >"$WORK/bad.out" 2>"$WORK/bad.err" && fail "the run with a wrong password succeeded"
grep -Eq "redis 127\.0\.0\.1:$REDIS_PORT/0: authentication failed" "$WORK/bad.err" ||
  fail "no error naming the Redis sink: $(tail -5 "$WORK/bad.err")"
# Wrong password in the url.
"$SLUICE" run "$WORK/badurl.yaml" --progress json --log-level debug \
  >"$WORK/badurl.out" 2>"$WORK/badurl.err" && fail "the run with a wrong url password succeeded"
grep -Eq "redis 127\.0\.0\.1:$REDIS_PORT/0: authentication failed" "$WORK/badurl.err" ||
  fail "no error naming the Redis sink: $(tail -5 "$WORK/badurl.err")"
echo "ok: wrong passwords fail naming the sink"

# SASL against the embedded cluster (which does not do SASL): whatever
# happens, it says something, and with librdkafka's debug on.
rc=0
timeout 120 "$SLUICE" run "$WORK/sasl.yaml" --trigger available-now --progress json \
  --log-level debug >"$WORK/sasl.out" 2>"$WORK/sasl.err" || rc=$?
[ "$rc" != 124 ] || fail "the SASL run hung"
[ -s "$WORK/sasl.err" ] || fail "the SASL run printed nothing"
grep -q "kafka:" "$WORK/sasl.err" || fail "no librdkafka log in the SASL run: $(tail -5 "$WORK/sasl.err")"
echo "ok: the SASL run ended with $rc"

# The secrets, anywhere: every output and log, Redis's log, the checkpoint.
found=$(grep -rlF "${pats[@]}" \
  "$WORK"/*.out "$WORK"/*.err "$WORK"/scrape.* "$WORK/ckpt" "$WORK/redis/redis.log" || true)
if [ -n "$found" ]; then
  for f in $found; do
    echo "--- $f" >&2
    grep -nF "${pats[@]}" "$f" | head -5 >&2
  done
  fail "a secret was printed"
fi
# The job files hold only the ${VAR} names, the environment the values;
# and the search does find a secret where one is.
if grep -qF "${pats[@]}" "$WORK"/*.yaml; then fail "a job file holds a secret"; fi
echo "redis://:********@${PW#*@}" >"$WORK/control"
grep -qF "${pats[@]}" "$WORK/control" || fail "the search cannot find half a secret"
echo "ok: no secret in any output"
