#!/usr/bin/python3
"""sluice beside the stream processors users choose instead (Kafka
Streams, Flink, Spark Structured Streaming), the same jobs on the same
records of the same real Apache Kafka broker, in one run.

    compare.py --build DIR [--peers kstreams,flink,spark|installed]
               [--records N] [--partitions P] [--runs R]
               [--brokers-file FILE] [--heap 2g] [--latency-seconds S]
               [--note TEXT] [--keep] [--json FILE] [--report FILE.md]
    compare.py --from-json FILE [--note TEXT] --report FILE.md

Run it under nice (make bench-compare does): sluice and the JVMs alike.
docs/benchmarks.md, "Against the peers", says what each peer runs and
what was tuned.

The broker: --brokers-file names a file holding the bootstrap address of
one that runs (the ctest fixture kafka_broker); otherwise the harness
starts its own (scripts/kafka-broker.sh, as tests/bench/latency.py does)
and stops it at the end. One redis-server of its own (tests/bench/run.py).

Data: `sluice produce --seed 1` (the records of tests/bench/run.py) into
the topic clicks, then one sentinel record at the end of every partition,
event "end", user "~end", its ts far past the last record's (the last ts
plus the watermark and two windows). The sentinels close every window of
the real records whatever a processor's watermark is made of (the
highest event time of all partitions, as sluice and Spark have it; the
lowest of the per-partition ones, as Flink has it; the highest of the
task's, as Kafka Streams has it), so every processor must write the same
windows; the sentinels' own window is left out of the comparison (Flink
fires it at the end of its bounded input, the others do not close it).

Workloads, one run of each per round (the order of tests/bench/run.py):
  W1            sluice tests/bench/jobs/w1.yaml (file sink, exactly once)
  W1-kafka      sluice tests/bench/jobs/w1_kafka.yaml (Kafka sink, one
                transaction per batch), beside Kafka Streams's W1
  W2            sluice tests/bench/jobs/w2.yaml (windows into Redis)
  kstreams-W1-kafka, kstreams-W2   tests/bench/peers/kstreams
  flink-W1, flink-W2               tests/bench/peers/flink
  spark-W1, spark-W2               tests/bench/peers/spark
Each is measured from outside as tests/bench/run.py measures (its
measure(): wall time from spawn to exit, CPU seconds and peak RSS from
wait4), and its output is followed meanwhile (every 5 ms): the time from
spawn to its first committed output (a file sink's first commit: sluice's
first _manifest entry, Spark's first _spark_metadata entry, Flink's first
finished part file; the first committed record of an output topic, read
committed; the first Redis key), and the steady-state rate: the records
per second between the moments the output first reached 20 % and 80 % of
its final size (file bytes, committed topic offsets, Redis keys); none
when the output grew in fewer than three steps.

Then the latency (--latency-seconds, 0: none): tests/bench/latency.py's
run_target of its kafka-alo target (sluice, trigger continuous, into a
topic) and of each peer's latency job, --runs times each; p50, p99,
p99.9 of the time from the producer's send to bench_echo's read.

Answers are checked: every file W1 writes as many records as sluice's W1,
Kafka Streams's topic as many as sluice's W1-kafka, every W2 the same
Redis hashes (count, order total, amount total) as sluice's. A peer that
fails (its exit status, a wrong answer, or it cannot be installed) is
reported with its error, not left out.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(BENCH))
sys.path.insert(0, BENCH)
import run as benchrun  # noqa: E402
from run import log, measure, same_digest, write_report  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kafka_settled import wait_settled  # noqa: E402

PEERS = ("kstreams", "flink", "spark")
SENTINEL_USER = "~end"
WINDOW_MS = 10_000
BEGIN = "<!-- bench peers: begin -->"
END = "<!-- bench peers: end -->"
# The JVM flags Spark's launcher adds on Java 17 (JavaModuleOptions); the
# Flink mini-cluster's serializers need some of the same.
JAVA17_OPENS = ["-XX:+IgnoreUnrecognizedVMOptions"] + [
    "--add-opens=java.base/%s=ALL-UNNAMED" % m for m in (
        "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io",
        "java.net", "java.nio", "java.util", "java.util.concurrent",
        "java.util.concurrent.atomic", "jdk.internal.ref", "sun.nio.ch",
        "sun.nio.cs", "sun.security.action", "sun.util.calendar")] + [
    "-Djdk.reflect.useDirectMethodHandle=false",
    "-Dio.netty.tryReflectionSetAccessible=true"]
MAIN = {"kstreams": "sluice.bench.KStreamsPeer",
        "flink": "sluice.bench.FlinkPeer",
        "spark": "sluice.bench.SparkPeer"}


def peer_lib(peer):
    return subprocess.run(
        ["bash", os.path.join(HERE, "build.sh"), "--lib", peer],
        capture_output=True, text=True, check=True).stdout.strip()


def peer_installed(peer):
    return os.path.exists(os.path.join(peer_lib(peer), ".stamp"))


# ------------------------------------------------------------ following
class Follow:
    """Samples a workload's output every 5 ms from its spawn (run.py's
    measure() starts and stops it): `amount()` is how much output there
    is (file bytes, committed offsets, Redis keys), `committed()` whether
    any of it is committed (visible to a reader)."""

    def __init__(self, amount, committed):
        self.amount, self.committed = amount, committed
        self.samples = []
        self.first = None
        self.done = threading.Event()

    def start(self, t0):
        self.t0 = t0
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self):
        now = time.monotonic() - self.t0
        try:
            if self.first is None and self.committed():
                self.first = now
            self.samples.append((now, self.amount()))
        except Exception:  # an output not there yet
            pass

    def loop(self):
        while not self.done.wait(0.005):
            self.sample()

    def stop(self, settle=0.0):
        """Once the process has exited: a last sample (what it committed
        as it stopped). With settle, and no output seen yet, samples on
        for up to settle seconds: a Kafka transaction's commit markers can
        reach the partitions just after the producer has gone, and its
        records are visible only then."""
        self.done.set()
        self.thread.join(30)
        self.sample()
        deadline = time.monotonic() + settle
        while self.first is None and time.monotonic() < deadline:
            time.sleep(0.005)
            self.sample()

    def steady(self, records, final):
        """Records/s between 20 % and 80 % of the final output, or None
        when the output came all at once."""
        if not final or not self.samples:
            return None
        # output that came in one or two steps (a file sink's final
        # commit, say) has no steady state to speak of
        if len({s[1] for s in self.samples if 0 < s[1] <= final}) < 3:
            return None
        a = next((s for s in self.samples if s[1] >= 0.2 * final), None)
        b = next((s for s in self.samples if s[1] >= 0.8 * final), None)
        if not a or not b or b[0] <= a[0] or b[1] <= a[1]:
            return None
        return records * (b[1] - a[1]) / final / (b[0] - a[0])


def visible_files(d):
    """Output files of a file sink, recursively: no hidden or _ names
    (Flink's in-progress .part files, Spark's _spark_metadata, sluice's
    _manifest)."""
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith((".", "_"))]
        out += [os.path.join(root, f) for f in files
                if not f.startswith((".", "_")) and not f.endswith(".crc")]
    return out


def file_bytes(d):
    return sum(os.path.getsize(f) for f in visible_files(d))


def file_lines(d):
    n = 0
    for f in visible_files(d):
        with open(f, "rb") as fh:
            n += fh.read().count(b"\n")
    return n


# --------------------------------------------------------------- bench
class Peers(benchrun.Bench):
    def __init__(self, a):
        super().__init__(a)
        self.runs_n = 0
        self.broker = None
        self.errors = {}

    # the real broker instead of run.py's embedded cluster
    def start_broker(self):
        if self.a.brokers_file:
            self.brokers = open(self.a.brokers_file).read().strip()
            pid = None
            pidf = os.path.join(os.path.dirname(self.a.brokers_file), "pid")
            if os.path.exists(pidf):
                pid = int(open(pidf).read())
        else:
            import latency
            self.broker = latency.Real(self.work)
            self.brokers, pid = self.broker.brokers, self.broker.pid()
        from confluent_kafka.admin import AdminClient
        self.admin = AdminClient({"bootstrap.servers": self.brokers})
        # run.py's measure() reads the helpers' CPU from /proc
        self.mock = types.SimpleNamespace(pid=pid or os.getpid())
        self.broker_pid = pid
        log("real broker at", self.brokers)

    def latency_cluster(self):
        """tests/bench/latency.py's real cluster: the one this run
        started, or one that wraps the running broker (not stopped)."""
        import latency
        if self.broker:
            return self.broker

        class Running(latency.Real):
            def __init__(s, work, brokers, pid, admin):
                s.dir = os.path.join(work, "kafka-broker")
                s.n, s.topics, s.started = 0, [], False
                s.brokers, s._pid, s.admin = brokers, pid, admin
        return Running(self.work, self.brokers, self.broker_pid or os.getpid(),
                       self.admin)

    def peer_argv(self, peer, brokers, tin, tout, base):
        args = ["latency", brokers, tin, tout]
        argv = self.java_argv(peer, base + ".jvm", args)
        if peer == "spark":
            argv += [base + ".ckpt", self.a.spark_latency_trigger]
            if self.a.spark_latency_trigger == "realtime":
                # real-time mode runs a long-lived task per source
                # partition, all at once: as many task slots as the
                # latency topic's partitions
                import latency
                argv.insert(argv.index("-cp"), "-Dpeer.master=local[%d]" %
                            latency.PARTITIONS)
        return argv

    def latency(self):
        """The continuous benchmark's stateless job at --latency-rate
        records/s (tests/bench/latency.py's run_target, its producer and
        its reader): sluice's kafka-alo target (trigger continuous 100ms,
        into a topic, at least once) and each peer's, into a topic read by
        bench_echo. --runs rounds; the median of each figure."""
        import latency
        a = self.a
        la = types.SimpleNamespace(
            fetch_wait_ms={"real": 10}, sluice=self.sluice,
            echo=os.path.join(self.build, "tests", "bench_echo"),
            produce_exe=os.path.join(self.build, "tests", "bench_produce"),
            sub_exe=os.path.join(self.build, "tests", "bench_sub"),
            producer="python", linger_ms="1", peer_argv=self.peer_argv)
        cl = self.latency_cluster()
        targets = ["kafka-alo"] + [p for p in a.peers
                                   if "%s-latency" % p not in self.errors]
        runs = {t: [] for t in targets}
        work = self.path("latency")
        os.makedirs(work, exist_ok=True)
        for i in range(a.runs):
            for t in targets:
                name = "latency" if t == "kafka-alo" else t + "-latency"
                if name in self.errors:
                    continue
                try:
                    r = latency.run_target(t, cl, la, work, a.latency_rate,
                                           a.latency_seconds,
                                           a.latency_warmup, "python",
                                           tag="%s-%d" % (t, i))
                except (SystemExit, RuntimeError, OSError) as e:
                    if t == "kafka-alo":
                        raise
                    self.errors[name] = "latency: %s" % e
                    continue
                if r["failed"] or not r["measured"]:
                    why = r["failed"] or "no output measured"
                    if t == "kafka-alo":
                        raise SystemExit("bench: sluice's latency run: " + why)
                    self.errors[name] = "latency: " + why
                    continue
                runs[t].append(r)
        out = {}
        for t, rs in runs.items():
            if not rs:
                continue
            x = {"runs": [{k: r[k] for k in ("p50_ms", "p99_ms", "p999_ms",
                                             "max_ms", "cpu_s", "measured",
                                             "expected_measured")}
                          for r in rs]}
            for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "cpu_s"):
                xs = [r[k] for r in rs]
                x[k], x[k + "_range"] = statistics.median(xs), [min(xs),
                                                                max(xs)]
            x["measured"] = rs[-1]["measured"]
            x["expected_measured"] = rs[-1]["expected_measured"]
            out[t] = x
        self.results["latency"] = {"rate": a.latency_rate,
                                   "seconds": a.latency_seconds,
                                   "warmup_s": a.latency_warmup,
                                   "targets": out}

    def topic_name(self, base):
        return "bench-%s-%d-%d" % (base, os.getpid(), int(time.time() * 1000))

    def create_topic(self, name, partitions):
        from confluent_kafka.admin import NewTopic
        fs = self.admin.create_topics([NewTopic(name, partitions, 1)],
                                      operation_timeout=30)
        for f in fs.values():
            f.result(60)
        deadline = time.monotonic() + 60
        while True:
            md = self.admin.list_topics(name, timeout=10)
            t = md.topics.get(name)
            if t and t.error is None and len(t.partitions) == partitions \
                    and all(p.leader >= 0 for p in t.partitions.values()):
                return
            if time.monotonic() > deadline:
                raise SystemExit("bench: topic %s has no leaders" % name)
            time.sleep(0.1)

    def produce_input(self):
        a = self.a
        self.topic = self.topic_name("clicks")
        self.create_topic(self.topic, a.partitions)
        self.produce(self.topic, a.records, 1)
        from confluent_kafka import Producer
        last = 1700000000000 + 10 * (a.records - 1)
        ts = last + a.watermark_ms + 2 * WINDOW_MS
        p = Producer({"bootstrap.servers": self.brokers, "acks": "all"})
        for part in range(a.partitions):
            p.produce(self.topic, partition=part, key=SENTINEL_USER,
                      value=json.dumps({
                          "id": a.records + part, "user": SENTINEL_USER,
                          "page": "/end", "event": "end", "amount": 0,
                          "ts": ts}, separators=(",", ":")))
        if p.flush(60):
            raise SystemExit("bench: the sentinels were not acknowledged")
        self.total = a.records + a.partitions
        log("produced %d records and %d sentinels to %s" %
            (a.records, a.partitions, self.topic))

    # ------------------------------------------------------- following
    def follow_files(self, d, committed):
        return Follow(lambda: file_bytes(d), committed)

    def follow_topic(self, topic):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.brokers,
                      "group.id": "bench-follow",
                      "isolation.level": "read_committed"})
        parts = [TopicPartition(topic, i) for i in range(self.a.partitions)]

        def amount():  # the last stable offsets: committed output
            return sum(c.get_watermark_offsets(p, timeout=2, cached=False)[1]
                       for p in parts)
        f = Follow(amount, lambda: amount() > 0)
        f.consumer = c
        return f

    def follow_redis(self):
        import redis
        r = redis.Redis(host="127.0.0.1", port=self.redis_port)
        return Follow(lambda: r.dbsize(), lambda: r.dbsize() > 0)

    def topic_count(self, topic, follow):
        """Committed records of topic, read as a user reads them, once no
        transaction on it is still being completed."""
        follow.stop(settle=60)
        why = wait_settled(self.brokers, topic)
        if why:
            raise RuntimeError(why)
        p = subprocess.run(
            ["kcat", "-b", self.brokers, "-C", "-t", topic, "-e", "-q",
             "-X", "isolation.level=read_committed", "-f", "x\n"],
            capture_output=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("kcat: " + p.stderr.decode()[-500:])
        return p.stdout.count(b"\n")

    def digest(self):
        """(hashes, orders, total) over w2:* but the sentinels' window."""
        script = ("local n, o, t = 0, 0, 0 "
                  "for _, k in ipairs(redis.call('KEYS', 'w2:*')) do "
                  "if string.sub(k, -%d) ~= ':%s' then n = n + 1 "
                  "o = o + tonumber(redis.call('HGET', k, 'orders')) "
                  "t = t + tonumber(redis.call('HGET', k, 'total')) end end "
                  "return {n, o, tostring(t)}" %
                  (len(SENTINEL_USER) + 1, SENTINEL_USER))
        n, o, t = self.redis_cmd("EVAL", script, "0").split("\n")
        return int(n), (int(o), float(t))

    def finish(self, m, follow, out, records):
        m["out"] = out
        m["first_output_s"] = follow.first
        m["steady_records_per_s"] = follow.steady(records, follow.samples[-1][1]
                                                  if follow.samples else 0)
        if hasattr(follow, "consumer"):
            follow.consumer.close()
        return m

    # ------------------------------------------------------ workloads
    def env(self, out):
        e = super().env(out)
        e["BENCH_TOPIC"] = self.topic
        return e

    def sluice_env(self):
        self.runs_n += 1
        return {"BENCH_RUN": "%d-%d" % (os.getpid(), self.runs_n)}

    def sluice_w1(self):
        d = os.path.join(self.path("runs", "w1"), "w1")
        f = self.follow_files(d, lambda: bool(os.listdir(
            os.path.join(d, "_manifest"))))
        m = self.run_sluice("w1.yaml", "w1", ["--set", "workers=2"],
                            env_extra=self.sluice_env(), watch=f)
        return self.finish(m, f, file_lines(d), self.total)

    def sluice_w1_kafka(self):
        topic = self.topic_name("w1-out")
        self.create_topic(topic, self.a.partitions)
        f = self.follow_topic(topic)
        env = self.sluice_env()
        env["BENCH_OUT_TOPIC"] = topic
        m = self.run_sluice("w1_kafka.yaml", "w1-kafka", env_extra=env,
                            watch=f)
        return self.finish(m, f, self.topic_count(topic, f), self.total)

    def sluice_w2(self):
        self.redis_cmd("FLUSHALL")
        f = self.follow_redis()
        m = self.run_sluice("w2.yaml", "w2", env_extra=self.sluice_env(),
                            watch=f)
        n, m["digest"] = self.digest()
        return self.finish(m, f, n, self.total)

    def java_argv(self, peer, out, args):
        """A JVM peer's command line: -Xmx --heap, its state (Kafka
        Streams) and temporary files under out. Not niced apart: the
        whole harness runs under nice (make bench-compare, smoke.sh), so
        that sluice and the peers run at the same priority."""
        tmp = os.path.join(out, "tmp")  # Flink and Spark leave files there
        os.makedirs(tmp, exist_ok=True)
        return ["java", "-Xmx" + self.a.heap,
                "-Djava.io.tmpdir=" + tmp,
                "-Dpeer.state=" + os.path.join(out, "state"),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"] + \
            JAVA17_OPENS + ["-cp", os.path.join(peer_lib(peer), "*"),
                            MAIN[peer]] + args

    def java(self, peer, name, args, follow):
        """Runs a JVM peer to completion, measured."""
        out = self.fresh(name)
        argv = self.java_argv(peer, out, args)
        with open(os.path.join(out, "stdout"), "w+") as so, \
                open(os.path.join(out, "stderr"), "w") as se:
            # Spark binds to what the host name resolves to unless told
            env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
            m = measure(argv, env=env, stdout=so, stderr=se,
                        helpers=(self.mock, self.redis), watch=follow)
            so.seek(0)
            text = so.read()
        if m["rc"] != 0:
            err = open(os.path.join(out, "stderr")).read()
            raise RuntimeError("exit %d: %s" % (m["rc"], err[-2000:]))
        lines = [x for x in text.splitlines() if x.startswith('{"records"')]
        if not lines:
            raise RuntimeError("no result line on stdout: " + text[-500:])
        r = json.loads(lines[-1])
        if r.get("records") is not None and r["records"] != self.total:
            raise RuntimeError("read %d records, not %d" %
                               (r["records"], self.total))
        m["dir"] = out
        return m

    def kstreams_w1_kafka(self):
        topic = self.topic_name("ks-out")
        self.create_topic(topic, self.a.partitions)
        f = self.follow_topic(topic)
        m = self.java("kstreams", "kstreams-w1", ["w1", self.brokers,
                                                  self.topic, topic], f)
        return self.finish(m, f, self.topic_count(topic, f), self.total)

    def peer_w1_files(self, peer):
        out = self.fresh(peer + "-w1-out")
        d = os.path.join(out, "w1")
        committed = {
            "flink": lambda: bool(visible_files(d)),
            "spark": lambda: bool(os.listdir(
                os.path.join(d, "_spark_metadata"))),
        }[peer]
        f = self.follow_files(d, committed)
        m = self.java(peer, peer + "-w1", ["w1", self.brokers, self.topic, d,
                                           os.path.join(out, "ckpt")], f)
        return self.finish(m, f, file_lines(d), self.total)

    def peer_w2(self, peer):
        self.redis_cmd("FLUSHALL")
        f = self.follow_redis()
        args = ["w2", self.brokers, self.topic,
                "127.0.0.1:%d" % self.redis_port, str(self.a.watermark_ms)]
        if peer == "spark":
            args.append(os.path.join(self.path("runs"), "spark-w2-ckpt-%d" %
                                     self.runs_n))
            self.runs_n += 1
        m = self.java(peer, peer + "-w2", args, f)
        n, m["digest"] = self.digest()
        return self.finish(m, f, n, self.total)

    # --------------------------------------------------------- driver
    def w0_real(self):
        """W0, the bare consumer (tests/bench/consume.c), over the input on
        the real broker: the floor of this run (also tests/bench/group.py's)."""
        out = os.path.join(self.work, "w0.json")
        with open(out, "w") as fh:
            m = measure([self.consume, self.brokers, self.topic,
                         str(self.total)], stdout=fh, helpers=(self.mock,))
        r = json.load(open(out))
        if m["rc"] != 0 or r["records"] != self.total:
            raise SystemExit("bench: W0 failed: %r" % r)
        m["records_per_s"] = self.total / m["wall_s"]
        m["cpu_us_per_record"] = m["cpu_s"] * 1e6 / self.total
        m["out"] = r["records"]
        m["first_output_s"] = r.get("first_record_s")
        return m

    def workloads(self):
        w = [("W0", self.w0_real), ("W1", self.sluice_w1),
             ("W1-kafka", self.sluice_w1_kafka), ("W2", self.sluice_w2)]
        for peer in self.a.peers:
            if peer == "kstreams":
                w += [("kstreams-W1-kafka", self.kstreams_w1_kafka),
                      ("kstreams-W2", lambda: self.peer_w2("kstreams"))]
            else:
                w += [(peer + "-W1", lambda p=peer: self.peer_w1_files(p)),
                      (peer + "-W2", lambda p=peer: self.peer_w2(p))]
        return w

    def rounds(self, workloads, runs):
        ms = {name: [] for name, _ in workloads}
        for i in range(runs):
            for name, fn in workloads:
                if name in self.errors:
                    continue
                try:
                    m = fn()
                except (RuntimeError, subprocess.SubprocessError) as e:
                    if not name.startswith(PEERS):
                        raise SystemExit("bench: %s failed: %s" % (name, e))
                    log("%s run %d FAILED: %s" % (name, i + 1, str(e)[-800:]))
                    self.errors[name] = str(e)[-2000:]
                    continue
                log("%-18s run %d: %.2f s wall, %.2f s CPU, %.0f MB peak "
                    "RSS, first output %s s, %d out" %
                    (name, i + 1, m["wall_s"], m["cpu_s"],
                     m["peak_rss_bytes"] / 1e6,
                     "-" if m["first_output_s"] is None else
                     "%.2f" % m["first_output_s"], m["out"]))
                ms[name].append(m)
        for name, _ in workloads:
            if ms[name]:
                self.summarize(name, ms[name])

    def summarize(self, name, ms):
        keys = ("wall_s", "cpu_s", "peak_rss_bytes", "first_output_s",
                "steady_records_per_s")
        r = {"runs": [{k: m.get(k) for k in keys} for m in ms],
             "out": ms[-1]["out"]}
        for k in keys:
            xs = [m[k] for m in ms if m.get(k) is not None]
            r[k] = statistics.median(xs) if xs else None
            r[k + "_range"] = [min(xs), max(xs)] if xs else None
        if "digest" in ms[-1]:
            r["digest"] = ms[-1]["digest"]
        r["records_per_s"] = self.total / r["wall_s"]
        self.results[name] = r

    def check(self):
        """Each peer's answer is sluice's; a wrong one is the peer's
        error."""
        res = self.results
        for name, r in list(res.items()):
            if name in ("W0", "W1", "W1-kafka", "W2", "latency"):
                continue
            ref = res["W1-kafka" if name.endswith("W1-kafka") else
                      "W2" if name.endswith("W2") else "W1"]
            if r["out"] != ref["out"] or ("digest" in ref and not
                                          same_digest(r["digest"],
                                                      ref["digest"])):
                self.errors[name] = "wrong answer: %d out %s, sluice %d %s" % (
                    r["out"], r.get("digest", ""), ref["out"],
                    ref.get("digest", ""))
                log(name, self.errors[name])
                del res[name]

    def main(self):
        a = self.a
        try:
            self.start_broker()
            self.start_redis()
            self.produce_input()
            for peer in list(a.peers):
                if not peer_installed(peer):
                    for w in ("W1-kafka" if peer == "kstreams" else "W1",
                              "W2", "latency"):
                        self.errors["%s-%s" % (peer, w)] = \
                            "not installed: run `make bench-peers`"
            self.rounds(self.workloads(), a.runs)
            self.check()
            if a.latency_seconds:
                os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
                self.latency()
        finally:
            if self.broker:
                self.broker.close()
            if a.keep:
                log("work directory kept:", self.work)
                self.work = tempfile.mkdtemp(prefix="sluice-bench-gone-")
            self.stop()
        self.write()

    def write(self):
        doc = {"facts": self.facts(), "results": self.results,
               "errors": self.errors}
        if self.a.json:
            with open(self.a.json, "w") as f:
                json.dump(doc, f, indent=1)
        if self.a.report:
            write_report(self.a.report, report(doc), BEGIN, END)

    def facts(self):
        def version(argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True,
                                      timeout=30).stdout.strip()
            except OSError:
                return "not found"
        java = subprocess.run(["java", "-version"], capture_output=True,
                              text=True).stderr.splitlines()
        return {
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "cores": os.cpu_count(),
            "sluice": version([self.sluice, "--version"]),
            "java": java[0] if java else "not found",
            "records": self.total,
            "partitions": self.a.partitions,
            "runs": self.a.runs,
            "heap": self.a.heap,
            "peers": list(self.a.peers),
            "note": self.a.note,
        }


ROWS = [("W1", "W1", "files"), ("W1-kafka", "W1-kafka", "topic"),
        ("W2", "W2", "Redis")]


def report(doc):
    f, r, errs = doc["facts"], doc["results"], doc["errors"]
    lines = []
    add = lines.append
    add("## Against the peers: results\n")
    if f.get("note"):
        add("**%s**\n" % f["note"])
    add("Measured %s UTC, %d cores; %s; %s. %d records (with the %d "
        "sentinels) on %d partitions of the real broker; each figure the "
        "median of %d run%s (range in brackets), every peer with -Xmx%s. "
        "× sluice: the peer's figure over sluice's for the same job in the "
        "same run (records/s above 1 is faster than sluice; the others "
        "above 1 are more).\n" %
        (f["date"], f["cores"], f["sluice"], f["java"], f["records"],
         f["partitions"], f["partitions"], f["runs"],
         "" if f["runs"] == 1 else "s", f["heap"]))
    add("| job | processor | records/s (steady) | × sluice | records/s "
        "(whole run) | × sluice | first output s | × sluice | peak RSS MB "
        "| × sluice | CPU s | × sluice |")
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def cell(x, key, scale=1.0, fmt="%.0f"):
        v = x.get(key)
        if v is None:
            return "-"
        rng = x.get(key + "_range")
        s = fmt % (v * scale)
        if rng and f["runs"] > 1:
            s += " [%s–%s]" % (fmt % (rng[0] * scale), fmt % (rng[1] * scale))
        return s

    def ratio(x, ref, key):
        if x.get(key) is None or not ref.get(key):
            return "-"
        return "%.2f" % (x[key] / ref[key])

    names = ["sluice"] + [p for p in f["peers"]]
    w0, w1 = r.get("W0"), r.get("W1")
    if w0 and w1:  # the floor, beside sluice's W1 (× sluice: W0 over W1)
        rss = dict(w0, peak_mb=w0["peak_rss_bytes"] / 1e6,
                   peak_mb_range=[v / 1e6 for v in w0["peak_rss_bytes_range"]])
        add("| W0 (floor; × over W1) | bare consumer | - | - | %.0f | %s | %s | %s | %s "
            "| %s | %s | %s |"
            % (w0["records_per_s"], ratio(w0, w1, "records_per_s"),
               cell(w0, "first_output_s", fmt="%.2f"),
               ratio(w0, w1, "first_output_s"), cell(rss, "peak_mb"),
               ratio(w0, w1, "peak_rss_bytes"), cell(w0, "cpu_s", fmt="%.2f"),
               ratio(w0, w1, "cpu_s")))
    for job, ref_name, _ in ROWS:
        ref = r.get(ref_name)
        for proc in names:
            name = ref_name if proc == "sluice" else "%s-%s" % (proc, job)
            if proc == "kstreams" and job == "W1":
                continue
            if proc in ("flink", "spark") and job == "W1-kafka":
                continue
            if name in errs:
                add("| %s | %s | failed: %s |||||||||| " %
                    (job, proc, errs[name].replace("\n", " ")
                     .replace("|", "/")[:300]))
                continue
            x = r.get(name)
            if x is None or ref is None:
                continue
            rss = dict(x, peak_mb=x["peak_rss_bytes"] / 1e6,
                       peak_mb_range=[v / 1e6 for v in
                                      x["peak_rss_bytes_range"]])
            add("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                % (job, proc, cell(x, "steady_records_per_s"),
                   ratio(x, ref, "steady_records_per_s"),
                   "%.0f" % x["records_per_s"],
                   ratio(x, ref, "records_per_s"),
                   cell(x, "first_output_s", fmt="%.2f"),
                   ratio(x, ref, "first_output_s"),
                   cell(rss, "peak_mb", fmt="%.0f"),
                   ratio(x, ref, "peak_rss_bytes"),
                   cell(x, "cpu_s", fmt="%.2f"), ratio(x, ref, "cpu_s")))
    lat = r.get("latency")
    if lat:
        ref = lat["targets"].get("kafka-alo", {})
        add("")
        add("Latency: the continuous benchmark's stateless job (parse, "
            "filter, select; tests/bench/latency.py) at %d records/s for %d "
            "s (the first %.0f s not counted), into a topic that bench_echo "
            "reads; from the producer's send time to bench_echo's read. "
            "sluice: trigger continuous 100ms, the Kafka sink with "
            "exactly_once false (latency.py's kafka-alo).\n" %
            (lat["rate"], lat["seconds"], lat["warmup_s"]))
        add("| processor | p50 ms | × sluice | p99 ms | × sluice | p99.9 ms "
            "| × sluice | max ms | CPU s | × sluice | records measured |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for proc in ["sluice"] + list(f["peers"]):
            t = "kafka-alo" if proc == "sluice" else proc
            name = "latency" if proc == "sluice" else proc + "-latency"
            if name in errs:
                add("| %s | failed: %s |||||||||" %
                    (proc, errs[name].replace("\n", " ")
                     .replace("|", "/")[:300]))
                continue
            x = lat["targets"].get(t)
            if not x:
                continue
            add("| %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %d"
                " of %.0f |" %
                (proc, cell(x, "p50_ms", fmt="%.2f"), ratio(x, ref, "p50_ms"),
                 cell(x, "p99_ms", fmt="%.2f"), ratio(x, ref, "p99_ms"),
                 cell(x, "p999_ms", fmt="%.2f"), ratio(x, ref, "p999_ms"),
                 x["max_ms"], cell(x, "cpu_s", fmt="%.2f"),
                 ratio(x, ref, "cpu_s"), x["measured"],
                 x["expected_measured"] or 0))
    add("")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", required=True, help="a build directory")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated, of %s; 'installed': those that "
                    "build.sh has built" % ",".join(PEERS))
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--watermark-ms", type=int, default=300_000)
    ap.add_argument("--brokers-file", help="use the running broker whose "
                    "bootstrap address this file holds")
    ap.add_argument("--heap", default="2g", help="the JVM peers' -Xmx")
    ap.add_argument("--latency-seconds", type=int, default=20,
                    help="seconds of records per latency run (0: no "
                    "latency runs)")
    ap.add_argument("--latency-rate", type=int, default=10000)
    ap.add_argument("--latency-warmup", type=float, default=8.0,
                    help="seconds of each latency run not counted (a JVM's "
                    "JIT, Spark's real-time mode starting its tasks)")
    ap.add_argument("--spark-latency-trigger", default="realtime",
                    choices=("realtime", "continuous", "microbatch"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (the runs' logs)")
    ap.add_argument("--note", help="a sentence put before the figures "
                    "(e.g. that the machine was shared)")
    ap.add_argument("--from-json", help="only write the report again from "
                    "the figures a run saved with --json")
    ap.add_argument("--json")
    ap.add_argument("--report")
    a = ap.parse_args()
    if a.from_json:
        doc = json.load(open(a.from_json))
        if a.note:
            doc["facts"]["note"] = a.note
        if a.report:
            write_report(a.report, report(doc), BEGIN, END)
        return
    if a.peers == "installed":
        a.peers = [p for p in PEERS if peer_installed(p)]
    else:
        a.peers = [p for p in a.peers.split(",") if p]
        bad = [p for p in a.peers if p not in PEERS]
        if bad:
            ap.error("unknown peer %s (peers: %s)" % (bad, ", ".join(PEERS)))
    if not shutil.which("java"):
        a.peers = []
    Peers(a).main()


if __name__ == "__main__":
    main()
