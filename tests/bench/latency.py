#!/usr/bin/python3
"""The continuous trigger's latency benchmark (not a test: `make bench`).

A producer sends RATE records/s, each carrying its send time in
microseconds, to a topic of 4 partitions. A target reads them and writes
each one out; a reader stamps every line (or output record, Redis message,
committed file record) when it can see it and takes the send time from it.
After a warm-up the latencies give p50, p99, p99.9 and max; the target's
CPU seconds are read from /proc. Targets, one after the other, each on
fresh topics (on the embedded cluster, a `sluice mock-kafka` process of its
own):

  floor        bench_echo: a bare librdkafka consumer that prints each
               record at once (tests/bench/echo.c)
  redis-floor  bench_echo --redis: the same consumer writing, per poll,
               SET lat:<id> <value> and PUBLISH lat <value> for every
               record, pipelined
  continuous   sluice, trigger continuous: 100ms, a stateless filter +
               select job into the console (written at once)
  continuous-redis
               the same job into the Redis sink, commands SET lat:{id} {t}
               and PUBLISH lat {t} (under continuous, each group is one
               EVALSHA of the guard script, written at once)
  continuous-file
               the same job into the file sink. Its records become visible
               at the epoch's commit, when the epoch's manifest
               _manifest/<epoch> is renamed into place; part files that no
               manifest lists are not output. The reader follows the
               output as a user's reader does: it waits for new manifests
               (inotify on _manifest), checks each one's seal, reads the
               part files it lists, and stamps every record of the epoch
               with the moment it saw the manifest. So this latency is per
               epoch by design: a record waits for the end of its epoch
               (up to 100 ms) and the commit.
  continuous-window-redis
               the same job with, after the filter, a tumbling 1 s
               event-time window on the send time (ms = t / 1000,
               watermark 1 s), group_by k = id % 100 (100 keys), count()
               and max(t), output: update, into Redis: SET
               win:{k}:{window_start} {n} and PUBLISH lat {tmax}. Under
               continuous each epoch's partial goes through the epoch's
               window phase, and the rows are written at the epoch's
               commit (MULTI/EXEC), so rows are per epoch, not per record.
               One sample per update row: the moment the reader got the
               row's PUBLISH minus max(t), the send time of the newest
               record the updated aggregate includes. That is the
               freshness of the row; older records that entered the row in
               the same epoch waited longer, up to one epoch more.
  kafka-alo    the same job into a Kafka topic, exactly_once: false
               (written at once); bench_echo reads that topic, so this one
               includes one more Kafka hop
  interval     the same console job with trigger interval: 100ms

A Redis target gets a redis-server of its own on a free 127.0.0.1 port (no
persistence, a temporary dir), stopped after it; its reader is bench_sub
(tests/bench/sub.c), a hiredis subscriber to channel `lat` that stamps
each message at the read that brought it. Redis targets' ratios are to
redis-floor, the others' to floor.

Clusters. By default the embedded cluster (`sluice mock-kafka`, a fresh
process per target). --real runs the targets on a real Apache Kafka broker
instead: one broker for the whole run (scripts/kafka-broker.sh start
--fresh, on free 127.0.0.1 ports; stopped at the end), warmed up with 3 s
of records produced and fetched before the first target (a fresh JVM is
slow at first), fresh topics of 4 partitions per target. It needs the broker's jars (`make deps`);
without them it says so and exits 2. --clusters mock,real runs both, one
table each. Every consumer (sluice's source, bench_echo) gets
fetch.min.bytes 1 and fetch.wait.max.ms --fetch-wait-ms: by default 1 on
the mock, which holds a fetch that long even when records arrive, and 10
on the real broker, which answers as soon as fetch.min.bytes are there
(librdkafka's advice for low latency: the wait at the latency one allows).

--sweep: the highest rate at which continuous-redis keeps p99 <= 10 ms.
Short runs (--sweep-seconds, the first --sweep-warmup not counted) from
bench_produce (tests/bench/produce.c, paced, linger.ms 1: the Python
producer does not reach these rates), starting at --sweep-start and
doubling until p99 exceeds 10 ms (halving instead when the first rate
fails), then bisecting (geometric mean) until the bounds are within
10 %. A run that fails on its latency is repeated --sweep-retries times
(1 by default) and the rate passes when one of its runs does. A run passes when p99 <= 10 ms, the job ran
to the end and no more than 2 % of the records expected in the measured
span are missing. The producer's own rate is checked: when it sends less
than 97 % of the rate asked for, the sweep stops there and reports it as
the producer's limit, not sluice's. Rates reported are the ones the
producer achieved.

--chart FILE: a PNG (gnuplot) with, per cluster, a histogram of the
latencies (log-spaced bins) and their percentiles, one line per target.

usage: latency.py --build DIR [--rate R] [--seconds S] [--warmup W]
                  [--targets floor,redis-floor,...|none] [--producer python|c]
                  [--real | --clusters mock,real] [--sweep] [--report FILE]
                  [--chart FILE.png] [--json FILE]
       latency.py --from-json FILE [--report FILE] [--chart FILE.png]
       latency.py --have-real   exit 0 when the real broker is installed
"""
import argparse
import ctypes
import json
import math
import multiprocessing
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import redis
from confluent_kafka import Producer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run import free_port, write_report  # noqa: E402

TARGETS = ("floor", "redis-floor", "continuous", "continuous-redis",
           "continuous-file", "continuous-window-redis", "kafka-alo",
           "interval")
REDIS_TARGETS = ("redis-floor", "continuous-redis", "continuous-window-redis")
FLOORS = ("floor", "redis-floor")  # read every record (no filter)
PER_ROW = ("continuous-window-redis",)  # a sample per output row
CLUSTERS = ("mock", "real")
# The JVM peers (tests/bench/peers/compare.py runs them: a.peer_argv gives
# their command line); like kafka-alo, into a topic that bench_echo reads.
PEER_TARGETS = ("kstreams", "flink", "spark")
END_MSG = b"end"  # published on `lat` after the target stopped
PARTITIONS = 4
SWEEP_P99_MS = 10.0
SWEEP_PRODUCER_OK = 0.97  # the producer kept the rate if it sent this much
SWEEP_MISSING_OK = 0.02


def log(*a):
    print("latency:", *a, file=sys.stderr, flush=True)


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck


def now_us():
    return time.time_ns() // 1000


class Run:
    """The latencies (µs) of one target, those sent from t_measure on."""

    def __init__(self):
        self.lat = []
        self.seen = 0  # outputs read, measured or not
        self.t_measure = None
        self.lock = threading.Lock()

    def add(self, sent_us, got_us=None):
        got = now_us() if got_us is None else got_us
        self.seen += 1
        if self.t_measure is not None and sent_us >= self.t_measure:
            with self.lock:
                self.lat.append(got - sent_us)


SENT = re.compile(rb'"t":(\d+)')


def read_lines(stream, run):
    for line in stream:
        m = SENT.search(line)
        if m:
            run.add(int(m.group(1)))


# ------------------------------------------------------------ file sink
IN_MOVED_TO = 0x80
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


def unseal(data, path):
    """The JSON body of a sealed file (checkpoint/fsio.c's trailer)."""
    at = data.rfind(b"#sluice-checksum ")
    m = re.match(rb"#sluice-checksum crc32=([0-9a-f]{8}) len=(\d+)\n$",
                 data[at:]) if at >= 0 else None
    if not m or int(m.group(2)) != at or \
            zlib.crc32(data[:at]) != int(m.group(1), 16):
        raise SystemExit("latency: %s: bad seal" % path)
    return json.loads(data[:at])


class ManifestReader(threading.Thread):
    """Follows a file sink's committed output as a user's reader does: it
    waits for a new entry in _manifest (inotify, IN_MOVED_TO: the sink
    renames each manifest into place), stamps the moment it woke, and
    reads only the part files the new manifests list, stamping each of
    their records with that moment."""

    def __init__(self, out, run):
        super().__init__(daemon=True)
        self.out, self.run_ = out, run
        self.mdir = os.path.join(out, "_manifest")
        self.seen = set()
        self.stopping = threading.Event()
        self.records = 0
        self.epochs = 0
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise SystemExit("latency: inotify_init1: %s" %
                             os.strerror(ctypes.get_errno()))
        # the sink creates _manifest when it opens; watched once it exists
        deadline = time.monotonic() + 30
        while not os.path.isdir(self.mdir):
            if time.monotonic() > deadline:
                raise SystemExit("latency: no %s" % self.mdir)
            time.sleep(0.01)
        if libc.inotify_add_watch(self.fd, self.mdir.encode(),
                                  IN_MOVED_TO) < 0:
            raise SystemExit("latency: inotify_add_watch %s: %s" %
                             (self.mdir, os.strerror(ctypes.get_errno())))

    def scan(self, stamp):
        new = sorted(int(n) for n in os.listdir(self.mdir)
                     if n.isdigit() and int(n) not in self.seen)
        for b in new:
            path = os.path.join(self.mdir, str(b))
            with open(path, "rb") as f:
                m = unseal(f.read(), path)
            for part in m["files"]:
                with open(os.path.join(self.out, part["name"]), "rb") as f:
                    for line in f:
                        s = SENT.search(line)
                        if s:
                            self.run_.add(int(s.group(1)), stamp)
                            self.records += 1
            self.seen.add(b)
            self.epochs += 1

    def run(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            stamp = now_us()
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass
            self.scan(stamp)
        self.scan(now_us())  # anything committed as the job stopped
        os.close(self.fd)


# ---------------------------------------------------------------- Redis
def start_redis(work, name):
    """A redis-server of the target's own on a free 127.0.0.1 port, no
    persistence; returns (process, port) once it answers PING."""
    port = free_port()
    d = os.path.join(work, name + "-redis")
    os.makedirs(d)
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", d, "--save", "", "--appendonly", "no"],
        stdout=open(d + ".log", "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        try:
            if redis.Redis(host="127.0.0.1", port=port,
                           socket_timeout=0.5).ping():
                return p, port
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    p.kill()
    p.wait()
    raise SystemExit("latency: redis-server did not answer: " +
                     open(d + ".log").read())


class Subscriber:
    """bench_sub on channel lat, subscribed when this returns."""

    def __init__(self, exe, port, base):
        self.port, self.out = port, base + ".sub"
        self.errpath = base + ".sub.err"
        self.p = subprocess.Popen(
            [exe, "127.0.0.1:%d" % port, "lat", self.out],
            stdout=subprocess.DEVNULL, stderr=open(self.errpath, "w"))
        deadline = time.monotonic() + 10
        while "bench_sub: ready" not in open(self.errpath).read():
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("latency: bench_sub did not subscribe: " +
                                 open(self.errpath).read())
            time.sleep(0.01)

    def finish(self, run):
        """Publishes the end, waits for bench_sub, adds its samples."""
        redis.Redis(host="127.0.0.1", port=self.port).publish("lat", END_MSG)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.terminate()  # it writes what it has on SIGTERM too
            self.p.wait(30)
        if self.p.returncode != 0:
            raise SystemExit("latency: bench_sub failed: " +
                             open(self.errpath).read())
        with open(self.out) as f:
            for line in f:
                sent, lat = line.split()
                sent = int(sent)
                run.add(sent, sent + int(lat))


# -------------------------------------------------------------- producers
def produce_py(brokers, topic, rate, seconds, linger_ms, out):
    """In a process of its own (no GIL shared with the readers); puts what
    it sent into the queue out."""
    # linger.ms (default 1): one request per millisecond (10 records at
    # 10,000/s); a request per record is more than the mock cluster and a
    # Python producer keep up with on two cores. The send time is taken
    # before the linger, so the latency includes it.
    p = Producer({"bootstrap.servers": brokers, "linger.ms": linger_ms,
                  "enable.idempotence": False, "acks": 1,
                  "queue.buffering.max.messages": 1000000})
    per_ms = max(1, rate // 1000)
    start = now_us()
    t0 = time.monotonic()
    n = 0
    end = t0 + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * rate)
        while n < due:
            p.produce(topic, b'{"id":%d,"t":%d,"user":"u%04d"}' %
                      (n, now_us(), n % 1000))
            n += 1
        p.poll(0)
        slot = t0 + (n + per_ms) / rate
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    took = time.monotonic() - t0
    p.flush(10)
    out.put({"sent": n, "seconds": took, "rate": n / took,
             "requested": rate, "start_us": start})


def produce(kind, a, brokers, topic, rate, seconds):
    """Sends for `seconds`; returns what the producer reports (sent, rate
    achieved, start_us: its wall clock at the start)."""
    if kind == "python":
        q = multiprocessing.Queue()
        prod = multiprocessing.Process(
            target=produce_py,
            args=(brokers, topic, rate, seconds, a.linger_ms, q))
        prod.start()
        r = q.get()
        prod.join()
        return r
    start = now_us()
    p = subprocess.run([a.produce_exe, brokers, topic, str(rate),
                        str(seconds), str(a.linger_ms)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("latency: bench_produce failed: " + p.stderr)
    r = json.loads(p.stdout)
    r["start_us"] = start
    return r


# ------------------------------------------------------------- clusters
def kafka_cache_lib():
    """Where scripts/kafka-broker.sh keeps the broker's jars."""
    pom = open(os.path.join(ROOT, "tests", "kafka", "pom.xml")).read()
    version = re.search(r"<kafka.version>(.*?)</kafka.version>", pom).group(1)
    cache = os.environ.get("SLUICE_KAFKA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or
        os.path.expanduser("~/.cache"), "sluice", "kafka-" + version)
    return os.path.join(cache, "lib")


def real_missing():
    """Why the real broker cannot run here, or None."""
    lib = kafka_cache_lib()
    if not os.path.exists(os.path.join(lib, ".complete")):
        return "no Apache Kafka jars in %s: run `make deps` (or " \
               "scripts/kafka-broker.sh fetch)" % lib
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") \
        if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        return "no java (make deps installs a JDK)"
    if not shutil.which("kcat"):
        return "no kcat (scripts/kafka-broker.sh waits for the broker with it)"
    return None


class Mock:
    """A fresh `sluice mock-kafka` per target: a run leaves nothing behind
    for the next one (its topics, consumers and producers)."""
    name = "mock"

    def __init__(self, sluice, work):
        self.sluice, self.work, self.proc = sluice, work, None

    def open(self, base):
        self.proc = subprocess.Popen(
            [self.sluice, "mock-kafka", "--topic", "lat:%d" % PARTITIONS,
             "--topic", "out:%d" % PARTITIONS], stdout=subprocess.PIPE,
            stderr=open(base + ".mock.err", "w"), text=True)
        brokers = self.proc.stdout.readline().strip()
        if not brokers:
            raise SystemExit("latency: sluice mock-kafka did not start: " +
                             open(base + ".mock.err").read())
        return brokers, "lat", "out"

    def pid(self):
        return self.proc.pid

    def close_target(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self):
        self.close_target()


class Real:
    """One Apache Kafka broker for the whole run (scripts/kafka-broker.sh),
    fresh topics per target, deleted after it."""
    name = "real"

    def __init__(self, work):
        from confluent_kafka.admin import AdminClient
        self.script = os.path.join(ROOT, "scripts", "kafka-broker.sh")
        self.dir = os.path.join(work, "kafka-broker")
        self.n = 0
        self.topics = []
        log("starting the real broker in", self.dir)
        t0 = time.monotonic()
        self.started = True  # stop is harmless on a broker that is not up
        try:
            p = subprocess.run(["bash", self.script, "start", "--fresh",
                                self.dir], capture_output=True, text=True,
                               timeout=300)
            if p.returncode != 0:
                raise SystemExit("latency: the real broker did not start:\n"
                                 + p.stderr[-3000:])
            self.brokers = open(os.path.join(self.dir,
                                             "bootstrap")).read().strip()
            self._pid = int(open(os.path.join(self.dir, "pid")).read())
            self.admin = AdminClient({"bootstrap.servers": self.brokers})
        except BaseException:
            self.close()
            raise
        log("real broker at %s (pid %d), up in %.1f s" %
            (self.brokers, self._pid, time.monotonic() - t0))

    def open(self, base):
        from confluent_kafka.admin import NewTopic
        self.n += 1
        tag = "%s-%d" % (os.path.basename(base), self.n)
        self.topics = ["lat-" + tag, "out-" + tag]
        fs = self.admin.create_topics(
            [NewTopic(t, PARTITIONS, 1) for t in self.topics],
            operation_timeout=30)
        for f in fs.values():
            f.result(60)
        # every partition has its leader before anyone reads or writes
        deadline = time.monotonic() + 30
        while True:
            md = self.admin.list_topics(timeout=10)
            ready = all(
                t in md.topics and md.topics[t].error is None and
                len(md.topics[t].partitions) == PARTITIONS and
                all(p.leader >= 0 for p in md.topics[t].partitions.values())
                for t in self.topics)
            if ready and self.answers():
                break
            if time.monotonic() > deadline:
                raise SystemExit("latency: topics %s not ready" % self.topics)
            time.sleep(0.1)
        return self.brokers, self.topics[0], self.topics[1]

    def answers(self):
        """Every new partition answers ListOffsets: a leader in the
        metadata may still refuse it for a moment (Not leader for
        partition), and the readers start from the high watermark."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition
        c = Consumer({"bootstrap.servers": self.brokers,
                      "group.id": "bench-latency-probe"})
        try:
            for t in self.topics:
                for p in range(PARTITIONS):
                    c.get_watermark_offsets(TopicPartition(t, p), timeout=5)
            return True
        except KafkaException:
            return False
        finally:
            c.close()

    def warm(self, a):
        """A fresh JVM runs its first requests slowly (class loading, the
        JIT): a few seconds of records through the broker, produced and
        fetched, before the first target."""
        base = os.path.join(os.path.dirname(self.dir), "warmup")
        brokers, tin, _ = self.open(base)
        echo = subprocess.Popen([a.echo, brokers, tin],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            produce(a.producer, a, brokers, tin, a.rate, 3)
        finally:
            echo.terminate()
            echo.wait(30)
            self.close_target()

    def pid(self):
        return self._pid

    def close_target(self):
        if self.topics:
            for f in self.admin.delete_topics(self.topics,
                                              operation_timeout=30).values():
                try:
                    f.result(60)
                except Exception as e:  # a leftover topic costs nothing
                    log("could not delete a topic: %s" % e)
            self.topics = []

    def close(self):
        self.admin = None  # its connection closed before the broker goes
        if self.started:
            subprocess.run(["bash", self.script, "stop", self.dir],
                           timeout=120)
            self.started = False
            log("real broker stopped")


# ----------------------------------------------------------------- jobs
def job_yaml(brokers, topic, trigger, sink, ckpt, fetch_wait, window=False):
    win = """  - map: { ms: 'to_int(t / 1000)', k: 'id % 100' }
  - window:
      tumbling: 1s
      time: ms
      watermark: 1s
      group_by: [k]
      aggregate: { n: count(), tmax: max(t) }
      output: update
""" if window else "  - select: [id, t, user]\n"
    return """job: bench-latency
source:
  kafka:
    brokers: %s
    topics: [%s]
    starting_offsets: latest
    properties: { fetch.wait.max.ms: "%d", fetch.min.bytes: "1" }
pipeline:
  - parse: json
  - filter: 'id %% 10 != 7'
%ssink:
  %s
trigger: %s
checkpoint: { dir: %s }
workers: 2
""" % (brokers, topic, fetch_wait, win, sink, trigger, ckpt)


def redis_sink(port, commands):
    # block style: a flow sequence would take the templates' braces for
    # flow mappings
    return ("redis:\n"
            "    url: redis://127.0.0.1:%d/0\n"
            "    command:\n" % port +
            "".join("      - %s\n" % c for c in commands).rstrip("\n"))


def pct(xs, q):
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, int(q * len(xs)))
    return xs[k]


HIST_BINS_PER_DECADE = 10
QUANT_X = [i / 20 for i in range(0, 81)]  # -log10(1 - q), 0 .. 4


def shape(lat):
    """A histogram (log-spaced bins, ms) and percentiles of sorted lat (µs),
    for the chart."""
    hist = {}
    for v in lat:
        ms = max(v, 1) / 1e3
        b = math.floor(math.log10(ms) * HIST_BINS_PER_DECADE)
        hist[b] = hist.get(b, 0) + 1
    quant = []
    for x in QUANT_X:
        q = 1 - 10 ** -x
        if lat and (1 - q) * len(lat) >= 1:
            quant.append([x, pct(lat, q) / 1e3])
    return {"hist": sorted([b, c] for b, c in hist.items()),
            "quantiles": quant}


def wait_output(p, brokers, topic, run, errpath, timeout=180):
    """A peer's "ready" says that it has started, not that records flow
    through it (Spark's real-time mode starts its tasks seconds later):
    sends a probe record to every partition every 100 ms until the
    reader has seen one come out."""
    prod = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    deadline = time.monotonic() + timeout
    while run.seen == 0:
        if p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("latency: no output from the target: " +
                             open(errpath).read()[-3000:])
        for part in range(PARTITIONS):
            prod.produce(topic, partition=part,
                         value=b'{"id":-1,"t":%d,"user":"probe"}' % now_us())
        prod.flush(5)
        time.sleep(0.1)


def run_target(name, cl, a, work, rate, seconds, warmup, producer, tag=None):
    """One run of a target on cluster cl; returns its figures."""
    base = os.path.join(work, "%s-%s" % (cl.name, tag or name))
    brokers, tin, tout = cl.open(base)
    srv = sub = p = echo = reader = None
    env = dict(os.environ, BENCH_FETCH_WAIT_MS=str(a.fetch_wait_ms[cl.name]))
    try:
        if name in REDIS_TARGETS:
            srv = start_redis(work, os.path.basename(base))
        run = Run()
        errpath = base + ".err"
        out_dir = None
        if name in FLOORS:
            argv = [a.echo, brokers, tin]
            if srv:
                argv += ["--redis", "127.0.0.1:%d" % srv[1]]
        elif name in PEER_TARGETS:
            argv = a.peer_argv(name, brokers, tin, tout, base)
        else:
            trig = "{ interval: 100ms }" if name == "interval" else \
                "{ continuous: 100ms }"
            if name == "kafka-alo":
                sink = "kafka: { brokers: %s, topic: %s, exactly_once: " \
                       "false }" % (brokers, tout)
            elif name == "continuous-redis":
                sink = redis_sink(srv[1], ["SET lat:{id} {t}",
                                           "PUBLISH lat {t}"])
            elif name == "continuous-window-redis":
                sink = redis_sink(srv[1], ["SET win:{k}:{window_start} {n}",
                                           "PUBLISH lat {tmax}"])
            elif name == "continuous-file":
                out_dir = base + ".out"
                sink = "file: { path: %s }" % out_dir
            else:
                sink = "console: { limit: 0 }"
            path = base + ".yaml"
            with open(path, "w") as f:
                f.write(job_yaml(brokers, tin, trig, sink, base + ".ckpt",
                                 a.fetch_wait_ms[cl.name],
                                 window=name in PER_ROW))
            argv = [a.sluice, "run", path, "--progress", "none"]
        if srv:  # subscribed before the target writes anything
            sub = Subscriber(a.sub_exe, srv[1], base)
        reads_stdout = name in ("floor", "continuous", "interval")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if reads_stdout
                             else subprocess.DEVNULL,
                             stderr=open(errpath, "w"), env=env)
        if name == "kafka-alo" or name in PEER_TARGETS:
            # the output topic, read by the floor's
            echo = subprocess.Popen([a.echo, brokers, tout],
                                    stdout=subprocess.PIPE,
                                    stderr=open(errpath + ".echo", "w"),
                                    env=env)
        if reads_stdout or echo:
            reader = threading.Thread(target=read_lines,
                                      args=((echo or p).stdout, run),
                                      daemon=True)
            reader.start()
        # ready: the target has its partitions (sluice logs its streams;
        # the floor and the peers say so; a JVM takes longer to start)
        deadline = time.monotonic() + (180 if name in PEER_TARGETS else 30)
        while time.monotonic() < deadline:
            text = open(errpath).read()
            if "streams over" in text or "bench_echo: ready" in text or \
                    "bench_peer: ready" in text or \
                    "batch 1" in text or "job 'bench-latency'" in text:
                break
            if p.poll() is not None:
                break
            time.sleep(0.05)
        if out_dir:
            reader = ManifestReader(out_dir, run)
            reader.start()
        if name in PEER_TARGETS:
            wait_output(p, brokers, tin, run, errpath)
        time.sleep(1.0)  # the target's fetch and the reader's assignment settle
        if p.poll() is not None:
            raise SystemExit("latency: %s exited at start:\n%s" %
                             (name, open(errpath).read()[-3000:]))
        cpu0 = proc_cpu_s(p.pid)
        rcpu0 = proc_cpu_s(srv[0].pid) if srv else 0.0
        bcpu0 = proc_cpu_s(cl.pid())
        run.t_measure = now_us() + int(warmup * 1e6)
        prod = produce(producer, a, brokers, tin, rate, seconds)
        time.sleep(1.0)  # the last records (interval: the last batch)
        cpu = proc_cpu_s(p.pid) - cpu0
        rcpu = proc_cpu_s(srv[0].pid) - rcpu0 if srv else None
        bcpu = proc_cpu_s(cl.pid()) - bcpu0
        failed = None
        if p.poll() is not None:
            errs = [x for x in open(errpath).read().splitlines()
                    if "error" in x] or ["(no error logged)"]
            failed = "the job exited (%d) before the end: %s" % (
                p.returncode, errs[-1].strip()[:400])
        p.send_signal(signal.SIGTERM)
        p.wait(60)
        if echo:
            echo.send_signal(signal.SIGTERM)
            echo.wait(30)
        if isinstance(reader, ManifestReader):
            reader.stopping.set()
        if reader:
            reader.join(30)
        if sub:
            sub.finish(run)
    finally:
        for x in (p, echo):
            if x and x.poll() is None:
                x.kill()
                x.wait()
        if sub and sub.p.poll() is None:
            sub.p.kill()
            sub.p.wait()
        if srv:
            srv[0].terminate()
            srv[0].wait(10)
        cl.close_target()
    lat = sorted(run.lat)
    frac = 1.0 if name in FLOORS else 0.9
    expect = None if name in PER_ROW else int(round(prod["sent"] * frac))
    # the records sent from t_measure on, as the producer paced them
    span = max(0.0, prod["seconds"] -
               max(0, run.t_measure - prod["start_us"]) / 1e6)
    expect_measured = None if name in PER_ROW else \
        prod["sent"] * frac * span / prod["seconds"]
    r = {"target": name, "cluster": cl.name, "rate": rate,
         "producer": prod, "sent": prod["sent"], "measured": len(lat),
         "p50_ms": pct(lat, 0.50) / 1e3, "p99_ms": pct(lat, 0.99) / 1e3,
         "p999_ms": pct(lat, 0.999) / 1e3,
         "max_ms": (lat[-1] / 1e3) if lat else float("nan"),
         "cpu_s": cpu, "broker_cpu_s": bcpu, "seconds": seconds,
         "warmup_s": warmup, "expected_total": expect,
         "expected_measured": expect_measured, "failed": failed}
    r.update(shape(lat))
    if rcpu is not None:
        r["redis_cpu_s"] = rcpu
    if isinstance(reader, ManifestReader):
        r["epochs"] = reader.epochs
    log("%-4s %-23s %7d/s sent %7.0f/s  p50 %.3f  p99 %.3f  p99.9 %.3f  "
        "max %.1f ms, %d %s measured%s, CPU %.2f s%s%s" %
        (cl.name, name, rate, prod["rate"], r["p50_ms"], r["p99_ms"],
         r["p999_ms"], r["max_ms"], len(lat),
         "rows" if name in PER_ROW else "records",
         "" if expect_measured is None else
         " (%.0f expected)" % expect_measured, cpu,
         "" if rcpu is None else ", redis-server %.2f s" % rcpu,
         "" if not failed else ", FAILED: " + failed))
    return r


# ---------------------------------------------------------------- sweep
def sweep(cl, a, work):
    """The highest rate at which continuous-redis keeps p99 <= 10 ms."""
    steps = []

    def step(rate):
        """Runs rate; a run that fails is repeated up to --sweep-retries
        times (a single slow spell of a shared machine should not end the
        doubling); the rate passes when one of its runs passes. Every run
        is listed."""
        for attempt in range(1 + a.sweep_retries):
            r = one(rate, attempt + 1)
            if r["ok"] or r["producer_limited"] or r["failed"]:
                break
        return r

    def one(rate, attempt):
        r = run_target("continuous-redis", cl, a, work, rate,
                       a.sweep_seconds, a.sweep_warmup, "c",
                       tag="sweep-%d-%d" % (rate, attempt))
        r["attempt"] = attempt
        missing = 1 - r["measured"] / r["expected_measured"] \
            if r["expected_measured"] else 1.0
        r["missing"] = max(0.0, missing)
        r["producer_limited"] = \
            r["producer"]["rate"] < SWEEP_PRODUCER_OK * rate
        why = []
        if r["failed"]:
            why.append(r["failed"])
        if not r["p99_ms"] <= SWEEP_P99_MS:
            why.append("p99 > %g ms" % SWEEP_P99_MS)
        if r["missing"] > SWEEP_MISSING_OK:
            why.append("%.1f %% of the records missing" % (100 * missing))
        r["ok"] = not why
        r["verdict"] = "pass" if not why else "; ".join(why)
        if r["producer_limited"]:
            r["verdict"] += "; the producer sent %.0f/s of %d/s" % (
                r["producer"]["rate"], rate)
        steps.append(r)
        return r

    lo = hi = None
    stop = None
    rate = a.sweep_start
    while rate <= a.sweep_max:
        r = step(rate)
        if r["producer_limited"]:
            stop = "producer"
            break
        if not r["ok"]:
            hi = rate
            break
        lo = rate
        rate *= 2
    else:
        stop = "max"
    # the first rate failed already: halve until one passes
    while stop is None and lo is None and hi and hi // 2 >= 1000:
        r = step(hi // 2)
        if r["producer_limited"]:
            stop = "producer"
        elif r["ok"]:
            lo = hi // 2
        else:
            hi //= 2
    while stop is None and lo and hi and hi / lo > 1.1:
        mid = int(round(math.sqrt(lo * hi) / 1000.0)) * 1000
        if mid <= lo or mid >= hi:
            break
        r = step(mid)
        if r["producer_limited"]:
            stop = "producer"
            break
        if r["ok"]:
            lo = mid
        else:
            hi = mid
    passed = [s for s in steps if s["ok"]]
    best = max(passed, key=lambda s: s["producer"]["rate"]) if passed else None
    passed_rates = {s["rate"] for s in passed}
    failed_at = [s for s in steps if s["rate"] not in passed_rates and
                 (not best or s["rate"] > best["rate"])]
    first_fail = min(failed_at, key=lambda s: s["rate"]) if failed_at else None
    return {"steps": steps, "stop": stop,
            "best_rate": best["producer"]["rate"] if best else None,
            "best_requested": best["rate"] if best else None,
            "fail_rate": first_fail["producer"]["rate"] if first_fail else None,
            "fail_requested": first_fail["rate"] if first_fail else None,
            "seconds": a.sweep_seconds, "warmup_s": a.sweep_warmup,
            "start": a.sweep_start, "retries": a.sweep_retries}


# ---------------------------------------------------------------- report
MARKERS = {
    "mock": ("<!-- latency results: begin -->",
             "<!-- latency results: end -->"),
    "real": ("<!-- latency results, real broker: begin -->",
             "<!-- latency results, real broker: end -->"),
}
PRODUCERS = {
    "python": "a confluent-kafka producer in a process of its own "
              "(linger.ms %s, counted in the latency)",
    "c": "bench_produce (tests/bench/produce.c: librdkafka, paced, "
         "linger.ms %s, counted in the latency)",
}


def report(cluster, res, sw, a, chart_name):
    if cluster == "mock":
        where = "a topic of %d partitions on `sluice mock-kafka` (a fresh " \
                "process per target)" % PARTITIONS
        fetch = ("Every consumer (sluice's source, bench_echo) runs with "
                 "fetch.min.bytes 1 and fetch.wait.max.ms %d: the mock "
                 "cluster holds a fetch that long even when records "
                 "arrive." % a.fetch_wait_ms["mock"])
        head = "## Latency (continuous trigger)\n"
    else:
        where = "fresh topics of %d partitions on one real Apache Kafka " \
                "broker (scripts/kafka-broker.sh, 127.0.0.1; its JVM warmed " \
                "up with 3 s of records before the first target)" % PARTITIONS
        fetch = ("Every consumer (sluice's source, bench_echo) runs with "
                 "fetch.min.bytes 1 and fetch.wait.max.ms %d, librdkafka's "
                 "advice for low latency (the wait at the latency one "
                 "allows; a real broker answers a fetch as soon as "
                 "fetch.min.bytes are there, so the wait only bounds a "
                 "fetch that finds nothing)." % a.fetch_wait_ms["real"])
        head = "## Latency (continuous trigger), real broker\n"
    lines = [head]
    if res:
        lines.append(
            "Measured %s by tests/bench/latency.py: %d records/s for %d s "
            "(the first %.0f s not counted) from %s to %s, each record "
            "carrying its send time; latency is the time until a reader in "
            "the benchmark saw the record written by the target. %s A Redis "
            "target writes to a redis-server of its own on 127.0.0.1 (no "
            "persistence) and is read by bench_sub, a subscriber to the "
            "channel its PUBLISH commands write. continuous-file is read "
            "as a user reads the file sink: a record counts when the "
            "manifest of its epoch appears, so its latency is per epoch by "
            "design. continuous-window-redis has one sample per update "
            "row, its PUBLISH time minus max(t), the send time of the "
            "newest record in the updated aggregate (rows are written at "
            "each epoch's commit). CPU is the target's own, over the "
            "producing time (redis-server's and the broker's are given "
            "apart). Ratios are to the floor of the same run: redis-floor "
            "for the Redis targets, floor for the others.\n" %
            (a.date, a.rate, a.seconds, a.warmup,
             PRODUCERS[a.producer] % a.linger_ms, where, fetch))
        lines += ["| target | p50 ms | p99 ms | p99.9 ms | max ms | "
                  "records measured | CPU s | p99 ratio |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        rcpu, bcpu, short, failed = [], [], [], []
        for name in TARGETS:
            r = res.get(name)
            if not r:
                continue
            base = "redis-floor" if name in REDIS_TARGETS else "floor"
            ratio = "%.2f × %s" % (r["p99_ms"] / res[base]["p99_ms"], base) \
                if base in res and name != base else \
                ("1.00 × %s" % base if name == base else "–")
            n = "%d rows" % r["measured"] if name in PER_ROW else \
                "%d" % r["measured"]
            lines.append("| %s | %.3f | %.3f | %.3f | %.1f | %s | %.2f | "
                         "%s |" % (name, r["p50_ms"], r["p99_ms"],
                                   r["p999_ms"], r["max_ms"], n, r["cpu_s"],
                                   ratio))
            if "redis_cpu_s" in r:
                rcpu.append("%.2f s under %s" % (r["redis_cpu_s"], name))
            bcpu.append("%.2f s under %s" % (r["broker_cpu_s"], name))
            if r["producer"]["rate"] < 0.97 * r["rate"]:
                short.append("%s %.0f/s" % (name, r["producer"]["rate"]))
            if r["failed"]:
                failed.append("%s: %s" % (name, r["failed"]))
        lines.append("")
        if rcpu:
            lines.append("redis-server's CPU over the producing time: %s." %
                         ", ".join(rcpu))
        lines.append("The broker's CPU (%s) over the producing time: %s." %
                     ("the mock-kafka process" if cluster == "mock" else
                      "the broker's JVM", ", ".join(bcpu)))
        if short:
            lines.append("The producer did not keep %d records/s under: %s." %
                         (a.rate, ", ".join(short)))
        if failed:
            lines.append("Failed: %s." % "; ".join(failed))
        lines.append("")
    if sw:
        lines.append(
            "Rate sweep (continuous-redis; runs of %d s, the first %.0f s "
            "not counted, from bench_produce; doubling from %d/s, then "
            "bisecting; a run passes with p99 ≤ %g ms, the job running to "
            "the end and at most %.0f %% of the records missing; %severy run "
            "is listed; the rate is the one the producer achieved):\n" %
            (sw["seconds"], sw["warmup_s"], sw["start"], SWEEP_P99_MS,
             100 * SWEEP_MISSING_OK,
             "a run that fails on its latency is repeated up to %d "
             "time%s and the rate passes when one of its runs does; " %
             (sw["retries"], "" if sw["retries"] == 1 else "s")
             if sw["retries"] else ""))
        lines += ["| asked /s | sent /s | p50 ms | p99 ms | p99.9 ms | "
                  "max ms | CPU s | redis-server CPU s | result |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for s in sorted(sw["steps"], key=lambda s: (s["rate"],
                                                     s["attempt"])):
            lines.append("| %d | %.0f | %.3f | %.3f | %.3f | %.1f | %.2f | "
                         "%.2f | %s |" %
                         (s["rate"], s["producer"]["rate"], s["p50_ms"],
                          s["p99_ms"], s["p999_ms"], s["max_ms"], s["cpu_s"],
                          s.get("redis_cpu_s", float("nan")), s["verdict"]))
        lines.append("")
        if sw["best_rate"] is None:
            concl = "No run passed."
            if sw["stop"] == "producer":
                concl += (" The sweep stopped at %d/s asked, which the "
                          "producer could not keep." %
                          max(s["rate"] for s in sw["steps"]
                              if s["producer_limited"]))
        else:
            concl = "Highest rate with p99 ≤ %g ms: %.0f records/s" % (
                SWEEP_P99_MS, sw["best_rate"])
            if sw["stop"] == "producer":
                concl += ("; the sweep stopped at %d/s asked, which the "
                          "producer could not keep: a limit of the producer "
                          "on this machine, not a bound found for sluice." %
                          max(s["rate"] for s in sw["steps"]
                              if s["producer_limited"]))
            elif sw["stop"] == "max":
                concl += " (the sweep's upper end, --sweep-max)."
            elif sw["fail_rate"] is not None:
                concl += "; %.0f records/s did not pass." % sw["fail_rate"]
            else:
                concl += "."
        lines.append(concl + "\n")
    if chart_name:
        lines.append("![latency histogram and percentiles](%s)\n" %
                     chart_name)
    return "\n".join(lines)


def chart(png, results, work):
    """Per cluster: the latency histogram (log-spaced bins, share of the
    samples per bin) and the percentiles, one line per target, in the same
    colours in both panels (the key is in the percentiles panel)."""
    clusters = [c for c in CLUSTERS if results.get(c, {}).get("targets")]
    if not clusters:
        return
    data = os.path.join(work, "chart.dat")
    blocks = []  # (cluster, target, index)
    with open(data, "w") as f:
        for c in clusters:
            for name in TARGETS:
                r = results[c]["targets"].get(name)
                if not r or not r["measured"]:
                    continue
                total = r["measured"]
                f.write("# %s %s histogram\n" % (c, name))
                for b, n in r["hist"]:
                    lo = 10 ** (b / HIST_BINS_PER_DECADE)
                    hi = 10 ** ((b + 1) / HIST_BINS_PER_DECADE)
                    f.write("%g %g\n" % (math.sqrt(lo * hi),
                                         100.0 * n / total))
                f.write("\n\n")
                f.write("# %s %s percentiles\n" % (c, name))
                for x, ms in r["quantiles"]:
                    f.write("%g %g\n" % (x, ms))
                f.write("\n\n")
                blocks.append((c, name, len(blocks)))
    # colour and dash per target, in TARGETS' order: the per-epoch ones
    # (file, interval) lie on top of each other, so they differ in dash too
    colors = ["#1f4e79", "#e8590c", "#2f9e44", "#c92a2a", "#7048e8",
              "#495057", "#e64980", "#15aabf"]
    dashes = [1, 1, 1, 1, 2, 1, 1, 3]
    color = {n: colors[i] for i, n in enumerate(TARGETS)}
    dash = {n: dashes[i] for i, n in enumerate(TARGETS)}
    title = {"mock": "embedded cluster", "real": "real broker"}
    s = ["set terminal pngcairo size 1100,%d noenhanced font \",10\"" %
         (380 * len(clusters)),
         "set output '%s'" % png,
         "set multiplot layout %d,2 title \"sluice latency, continuous "
         "trigger (tests/bench/latency.py)\"" % len(clusters),
         "set grid"]
    for c in clusters:
        mine = [(n, i) for cc, n, i in blocks if cc == c]
        s += ["set title \"%s: histogram\"" % title[c], "unset key",
              "set logscale x", "unset logscale y",
              "set xlabel \"latency (ms, log scale)\"",
              "set ylabel \"share of samples per bin (%)\"",
              "set xrange [*:*]", "set yrange [0:*]", "set xtics auto",
              "plot " + ", ".join(
                  "'%s' index %d using 1:2 with lines lw 2 lc rgb \"%s\" dt %d "
                  "title \"%s\"" % (data, 2 * i, color[n], dash[n], n)
                  for n, i in mine)]
        s += ["set title \"%s: percentiles\"" % title[c],
              "set key bottom right font \",8\"",
              "unset logscale x", "set logscale y",
              "set xlabel \"percentile\"", "set ylabel \"latency (ms)\"",
              "set xrange [0:4]", "set yrange [*:*]",
              "set xtics (\"0\" 0, \"90\" 1, \"99\" 2, \"99.9\" 3, "
              "\"99.99\" 4)",
              "plot " + ", ".join(
                  "'%s' index %d using 1:2 with lines lw 2 lc rgb \"%s\" dt %d "
                  "title \"%s\"" % (data, 2 * i + 1, color[n], dash[n], n)
                  for n, i in mine)]
    s.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(s) + "\n", text=True,
                   check=True)
    log("chart written to", png)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build")
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="seconds of each run not counted (default 3)")
    ap.add_argument("--report")
    ap.add_argument("--chart", help="write the PNG chart here")
    ap.add_argument("--fetch-wait-ms", type=int,
                    help="fetch.wait.max.ms of every consumer (default: 1 "
                    "on the mock, which holds a fetch for all of it even "
                    "when records arrive; 10 on the real broker)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--from-json", help="only rewrite the report and the "
                    "chart from the figures a run saved with --json")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated, or none")
    ap.add_argument("--producer", choices=("python", "c"), default="python",
                    help="the targets' producer (the sweep always uses c)")
    ap.add_argument("--linger-ms", default="1",
                    help="the producers' linger.ms (default 1)")
    ap.add_argument("--real", action="store_true",
                    help="on a real Apache Kafka broker instead of the mock")
    ap.add_argument("--clusters", help="mock, real or mock,real")
    ap.add_argument("--have-real", action="store_true",
                    help="only say whether the real broker is installed "
                    "(exit 0) or not (exit 1)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (jobs, logs) and say where")
    ap.add_argument("--sweep", action="store_true",
                    help="find the highest rate with continuous-redis "
                    "p99 <= 10 ms")
    ap.add_argument("--sweep-seconds", type=int, default=6)
    ap.add_argument("--sweep-warmup", type=float, default=2.0)
    ap.add_argument("--sweep-start", type=int, default=10000)
    ap.add_argument("--sweep-max", type=int, default=2560000)
    ap.add_argument("--sweep-retries", type=int, default=1,
                    help="times a failing sweep run is repeated (default 1)")
    a = ap.parse_args()
    if a.have_real:
        why = real_missing()
        print("real broker: " + (why or "installed"))
        sys.exit(1 if why else 0)
    if a.from_json:
        # only the report and the chart again, from a run's --json
        doc = json.load(open(a.from_json))
        f = doc["facts"]
        a.rate, a.seconds, a.warmup = f["rate"], f["seconds"], f["warmup_s"]
        a.producer, a.fetch_wait_ms = f["producer"], f["fetch_wait_ms"]
        a.linger_ms = f.get("linger_ms", "1")
        a.date = f["date"][:10]
        results = doc["results"]
        write_outputs(a, results, [c for c in CLUSTERS if c in results])
        return
    if not a.build:
        ap.error("--build DIR is required")
    targets = [] if a.targets == "none" else a.targets.split(",")
    for name in targets:
        if name not in TARGETS:
            ap.error("unknown target %r (one of %s)" %
                     (name, ", ".join(TARGETS)))
    if a.real and a.clusters:
        ap.error("--real or --clusters, not both")
    clusters = ["real"] if a.real else \
        (a.clusters.split(",") if a.clusters else ["mock"])
    for c in clusters:
        if c not in CLUSTERS:
            ap.error("unknown cluster %r (mock, real)" % c)
    if a.warmup >= a.seconds or a.sweep_warmup >= a.sweep_seconds:
        ap.error("the warm-up must be shorter than the run")
    if "real" in clusters:
        why = real_missing()
        if why:
            print("latency: the real broker is not installed: %s" % why,
                  file=sys.stderr)
            sys.exit(2)
    a.fetch_wait_ms = {"mock": a.fetch_wait_ms or 1,
                       "real": a.fetch_wait_ms or 10}
    build = os.path.abspath(a.build)
    a.sluice = os.path.join(build, "sluice")
    a.echo = os.path.join(build, "tests", "bench_echo")
    a.produce_exe = os.path.join(build, "tests", "bench_produce")
    a.sub_exe = os.path.join(build, "tests", "bench_sub")
    need = [a.sluice, a.echo]
    if a.producer == "c" or a.sweep:
        need.append(a.produce_exe)
    if a.sweep or any(t in REDIS_TARGETS for t in targets):
        need.append(a.sub_exe)
    for x in need:
        if not os.access(x, os.X_OK):
            raise SystemExit("latency: no %s (build the tests of %s)" %
                             (x, build))
    # SIGTERM (make, a timeout) cleans up like ^C: brokers, servers, jobs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="sluice-latency-")
    results = {}
    try:
        for c in clusters:
            cl = Mock(a.sluice, work) if c == "mock" else Real(work)
            try:
                if c == "real":
                    cl.warm(a)
                res = {}
                for name in targets:
                    res[name] = run_target(name, cl, a, work, a.rate,
                                           a.seconds, a.warmup, a.producer)
                sw = sweep(cl, a, work) if a.sweep else None
                if sw:
                    log("%s sweep: highest rate with p99 <= %g ms: %s%s" %
                        (c, SWEEP_P99_MS, "none" if sw["best_rate"] is None
                         else "%.0f/s" % sw["best_rate"],
                         " (stopped: the producer's limit)"
                         if sw["stop"] == "producer" else ""))
                results[c] = {"targets": res, "sweep": sw}
            finally:
                cl.close()
    finally:
        if a.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    a.date = time.strftime("%Y-%m-%d")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"facts": {
                "date": time.strftime("%Y-%m-%d %H:%M"), "rate": a.rate,
                "seconds": a.seconds, "warmup_s": a.warmup,
                "producer": a.producer, "fetch_wait_ms": a.fetch_wait_ms,
                "linger_ms": a.linger_ms},
                "results": results}, f, indent=1)
    write_outputs(a, results, clusters)


def write_outputs(a, results, clusters):
    """The chart and the report's blocks, one per cluster."""
    if a.chart:
        work = tempfile.mkdtemp(prefix="sluice-latency-chart-")
        try:
            chart(a.chart, results, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if a.report:
        chart_name = os.path.basename(a.chart) if a.chart else ""
        for i, c in enumerate(clusters):
            last = i == len(clusters) - 1
            text = report(c, results[c]["targets"], results[c]["sweep"], a,
                          chart_name if last else "")
            write_report(a.report, text, *MARKERS[c])


if __name__ == "__main__":
    main()
