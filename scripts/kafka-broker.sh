#!/usr/bin/env bash
# A real Apache Kafka broker for the tests: one JVM in KRaft combined mode
# (broker and controller), on free ports of 127.0.0.1, its state in DIR.
#
#   kafka-broker.sh fetch           the jars into the cache (make deps does it)
#   kafka-broker.sh start [--fresh] DIR
#                                   writes DIR/server.properties and formats
#                                   DIR/data the first time (--fresh: wipes DIR
#                                   first), starts the broker, waits until it
#                                   answers, prints its bootstrap address and
#                                   writes DIR/pid and DIR/bootstrap
#   kafka-broker.sh stop DIR        SIGTERM, waits; SIGKILL after 60 s
#   kafka-broker.sh kill DIR        SIGKILL, waits until it is gone
#   kafka-broker.sh restart DIR     stop, then start on the same log dir and ports
#
# The jars come from Maven Central (tests/kafka/pom.xml pins the version) into
# $SLUICE_KAFKA_CACHE, by default ${XDG_CACHE_HOME:-~/.cache}/sluice/kafka-V.
# The broker logs to DIR/broker.log (log4j2), its JVM output to DIR/stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
POM=$ROOT/tests/kafka/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE=${SLUICE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kafka-$KAFKA_VERSION}
LIB=$CACHE/lib
START_TIMEOUT=${SLUICE_KAFKA_START_TIMEOUT:-120} # seconds
STOP_TIMEOUT=60

die() {
  echo "kafka-broker.sh: $*" >&2
  exit 1
}

# fetch: copies kafka_2.13 and its runtime dependencies (with log4j2 and its
# slf4j binding) into $LIB; a finished copy is marked by $LIB/.complete and
# not fetched again. One retry; a clear error when Maven Central is not there.
fetch() {
  [ -f "$LIB/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found (make deps installs maven)"
  local tmp try
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/lib.tmp.XXXXXX")
  echo "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIB"
  for try in 1 2; do
    if mvn -B -q -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$CACHE/fetch.log" 2>&1; then
      ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 ||
        die "Maven gave no kafka_2.13-$KAFKA_VERSION.jar (see $CACHE/fetch.log)"
      touch "$tmp/.complete"
      rm -rf "$LIB"
      mv "$tmp" "$LIB"
      return 0
    fi
    [ "$try" = 1 ] && echo "fetch failed, retrying once" >&2
  done
  rm -rf "$tmp"
  tail -20 "$CACHE/fetch.log" >&2
  die "cannot fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (is it reachable?); full log: $CACHE/fetch.log"
}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    echo "$JAVA_HOME/bin/java"
  else
    command -v java || die "java not found (make deps installs a JDK)"
  fi
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# alive DIR: the broker recorded in DIR/pid runs (and is that broker, not a
# process that got its pid later).
alive() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && tr "\\0" " " 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$1/server.properties"
}

write_config() {
  local dir=$1 port cport
  port=$(free_port)
  cport=$(free_port)
  [ "$port" != "$cport" ] || cport=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka-broker.sh: one broker, KRaft combined mode.
node.id=1
process.roles=broker,controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=1@127.0.0.1:$cport
log.dirs=$dir/data
# A single broker: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
# Group tests run sessions of 3 s (the default floor is 6 s).
group.min.session.timeout.ms=1000
auto.create.topics.enable=true
num.partitions=1
# A broker restarted after SIGKILL registers again only once the controller
# has timed out its old session (9 s by default).
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
# Small: two cores shared by the whole suite.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
}

# jvm_cmd DIR: sets JVM to the java command line for DIR's broker and tools.
# Small: a 256 MB heap, the serial collector, C1 only (starts faster).
jvm_cmd() {
  JVM=("$(java_bin)" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -XX:MaxMetaspaceSize=128m -Xss512k -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$1/log4j2.properties" -Dkafka.logs.dir="$1"
    -cp "$LIB/*")
}

format() {
  local dir=$1 id
  # A cluster id is 16 random bytes in unpadded URL-safe base64.
  id=$(/usr/bin/python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')
  jvm_cmd "$dir"
  # --cluster-id=ID, not -t ID: one id in 64 starts with '-', which the
  # tool's argument parser would take for an option
  "${JVM[@]}" kafka.tools.StorageTool format --cluster-id="$id" -c "$dir/server.properties" \
    >"$dir/format.log" 2>&1 || {
    cat "$dir/format.log" >&2
    die "formatting $dir/data failed"
  }
}

start() {
  local fresh=0 dir pid boot i
  if [ "${1:-}" = "--fresh" ]; then
    fresh=1
    shift
  fi
  [ $# = 1 ] || die "usage: kafka-broker.sh start [--fresh] DIR"
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  if [ $fresh = 1 ]; then
    alive "$dir" && kill_ "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
  fi
  alive "$dir" && die "a broker from $dir runs already (pid $(cat "$dir/pid"))"
  [ -f "$LIB/.complete" ] || die "no Kafka jars in $LIB: run 'make deps' (or kafka-broker.sh fetch)"
  if [ ! -f "$dir/data/meta.properties" ]; then
    write_config "$dir"
    format "$dir"
  fi
  rm -f "$dir/bootstrap"
  boot=$(sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$dir/server.properties")
  # Own session: not in the caller's process group, output only to files,
  # so that whoever started it (ctest) can exit while it runs.
  jvm_cmd "$dir"
  setsid "${JVM[@]}" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/stdout" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pid"
  # Ready when a metadata request lists the broker (bounded).
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$dir/stdout" "$dir/broker.log" >&2 2>/dev/null || true
      die "the broker exited while starting (logs in $dir)"
    fi
    if kcat -b "$boot" -L -m 2 2>/dev/null | grep -q "broker 1 at"; then
      echo "$boot" >"$dir/bootstrap.tmp"
      mv "$dir/bootstrap.tmp" "$dir/bootstrap"
      echo "$boot"
      return 0
    fi
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  tail -20 "$dir/broker.log" >&2 2>/dev/null || true
  die "the broker did not answer on $boot within $START_TIMEOUT s (logs in $dir)"
}

# wait_gone PID SECONDS: 0 once PID has exited, 1 after SECONDS.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    # A zombie (its parent has not reaped it yet) has stopped all the same.
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  return 1
}

stop() {
  local dir pid
  dir=$(cd "$1" && pwd) || die "no directory $1"
  rm -f "$dir/bootstrap"
  alive "$dir" || return 0
  pid=$(cat "$dir/pid")
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    echo "kafka-broker.sh: broker $pid did not stop within $STOP_TIMEOUT s, SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 30 || die "broker $pid survived SIGKILL"
  fi
}

kill_() {
  local dir=$1 pid
  rm -f "$dir/bootstrap"
  alive "$dir" || return 0
  pid=$(cat "$dir/pid")
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 30 || die "broker $pid survived SIGKILL"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  fetch) fetch ;;
  start) start "$@" ;;
  stop)
    [ $# = 1 ] || die "usage: kafka-broker.sh stop DIR"
    stop "$1"
    ;;
  kill)
    [ $# = 1 ] || die "usage: kafka-broker.sh kill DIR"
    kill_ "$(cd "$1" && pwd)"
    ;;
  restart)
    [ $# = 1 ] || die "usage: kafka-broker.sh restart DIR"
    stop "$1"
    start "$1"
    ;;
  *) die "usage: kafka-broker.sh fetch | start [--fresh] DIR | stop DIR | kill DIR | restart DIR" ;;
esac
