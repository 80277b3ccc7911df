#!/usr/bin/python3
"""The continuous trigger's latency benchmark (not a test: `make bench`).

A producer sends RATE records/s, each carrying its send time in
microseconds, to a topic of a `sluice mock-kafka` cluster. A target reads
them and writes each one out; a reader stamps every line (or output
record, or Redis message) when it arrives and takes send time from it.
After a warm-up the latencies give p50, p99, p99.9 and max; the target's
CPU seconds are read from /proc. Targets, one after the other, each on a
cluster of its own:

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
  kafka-alo    the same job into a Kafka topic, exactly_once: false
               (written at once); bench_echo reads that topic, so this one
               includes one more Kafka hop
  interval     the same console job with trigger interval: 100ms

A Redis target gets a redis-server of its own on a free 127.0.0.1 port
(no persistence, a temporary dir), stopped after it; the reader is a
subscriber to channel `lat` (python3-redis). Redis targets' ratios are
to redis-floor, the others' to floor.

usage: latency.py --build DIR [--rate R] [--seconds S] [--report FILE]
                  [--targets floor,redis-floor,...]
"""
import argparse
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import redis
from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, write_report  # noqa: E402

WARMUP_S = 3.0
TARGETS = ("floor", "redis-floor", "continuous", "continuous-redis",
           "kafka-alo", "interval")
REDIS_TARGETS = ("redis-floor", "continuous-redis")
FLOORS = ("floor", "redis-floor")  # read every record (no filter)
END_MSG = b"end"  # published on `lat` after the target stopped


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
    def __init__(self):
        self.lat = []  # µs, after the warm-up
        self.t_measure = None
        self.lock = threading.Lock()

    def add(self, sent_us):
        got = now_us()
        if self.t_measure is not None and sent_us >= self.t_measure:
            with self.lock:
                self.lat.append(got - sent_us)


SENT = re.compile(rb'"t":(\d+)')


def read_lines(stream, run):
    for line in stream:
        m = SENT.search(line)
        if m:
            run.add(int(m.group(1)))


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


def subscribe(port):
    """A subscriber to channel lat, subscribed when this returns."""
    ps = redis.Redis(host="127.0.0.1", port=port).pubsub()
    ps.subscribe("lat")
    m = ps.get_message(timeout=10)
    if not m or m["type"] != "subscribe":
        raise SystemExit("latency: SUBSCRIBE lat was not confirmed")
    return ps


def read_channel(ps, run):
    """Each message carries the send time: the record's value (JSON, from
    redis-floor) or the field t alone (from the sluice job)."""
    for m in ps.listen():
        if m["type"] != "message":
            continue
        data = m["data"]
        if data == END_MSG:
            break
        s = SENT.search(data)
        if s:
            run.add(int(s.group(1)))
        elif data.isdigit():
            run.add(int(data))
    ps.close()


def produce(brokers, topic, rate, seconds, out):
    """In a process of its own (no GIL shared with the readers); puts the
    number of records sent into the queue out."""
    # linger.ms 1: one request per millisecond (10 records at 10,000/s);
    # a request per record is more than the mock cluster and a Python
    # producer keep up with on two cores. The send time is taken before
    # the linger, so the latency includes it.
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 1,
                  "enable.idempotence": False, "acks": 1,
                  "queue.buffering.max.messages": 1000000})
    per_ms = max(1, rate // 1000)
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
    p.flush(10)
    out.put(n)


def pct(xs, q):
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, int(q * len(xs)))
    return xs[k]


def job_yaml(brokers, trigger, sink, ckpt, fetch_wait):
    return """job: bench-latency
source:
  kafka:
    brokers: %s
    topics: [lat]
    starting_offsets: latest
    properties: { fetch.wait.max.ms: "%d" }
pipeline:
  - parse: json
  - filter: 'id %% 10 != 7'
  - select: [id, t, user]
sink:
  %s
trigger: %s
checkpoint: { dir: %s }
workers: 2
""" % (brokers, fetch_wait, sink, trigger, ckpt)


def measure(name, argv, brokers, a, work, out_topic=None, redis_srv=None):
    run = Run()
    errpath = os.path.join(work, name + ".err")
    err = open(errpath, "w")
    ps = None
    if redis_srv:  # subscribed before the target writes anything
        ps = subscribe(redis_srv[1])
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL if ps else
                         subprocess.PIPE, stderr=err)
    echo = None
    if out_topic:  # the output topic, read by the floor's consumer
        echo = subprocess.Popen([a.echo, brokers, out_topic],
                                stdout=subprocess.PIPE,
                                stderr=open(errpath + ".echo", "w"))
    if ps:
        rd = threading.Thread(target=read_channel, args=(ps, run))
    else:
        rd = threading.Thread(target=read_lines,
                              args=((echo or p).stdout, run))
    rd.start()
    # ready: the target has its partitions (sluice logs its streams; the
    # floor says so); give the output consumer its assignment too
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = open(errpath).read()
        if "streams over" in text or "bench_echo: ready" in text or \
                "batch 1" in text or "job 'bench-latency'" in text:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # the target's fetch and the reader's assignment settle
    cpu0 = proc_cpu_s(p.pid)
    rcpu0 = proc_cpu_s(redis_srv[0].pid) if redis_srv else 0.0
    run.t_measure = now_us() + int(WARMUP_S * 1e6)
    q = multiprocessing.Queue()
    prod = multiprocessing.Process(target=produce,
                                   args=(brokers, "lat", a.rate, a.seconds, q))
    prod.start()
    sent = q.get()
    prod.join()
    time.sleep(1.0)  # the last records (interval: the last batch)
    cpu = proc_cpu_s(p.pid) - cpu0
    rcpu = proc_cpu_s(redis_srv[0].pid) - rcpu0 if redis_srv else None
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    if echo:
        echo.send_signal(signal.SIGTERM)
        echo.wait(30)
    if redis_srv:
        redis.Redis(host="127.0.0.1", port=redis_srv[1]).publish("lat",
                                                                 END_MSG)
    rd.join(30)
    lat = sorted(run.lat)
    expect = sum(1 for i in range(sent) if i % 10 != 7) \
        if name not in FLOORS else sent
    r = {"target": name, "sent": sent, "measured": len(lat),
         "p50_ms": pct(lat, 0.50) / 1e3, "p99_ms": pct(lat, 0.99) / 1e3,
         "p999_ms": pct(lat, 0.999) / 1e3,
         "max_ms": (lat[-1] / 1e3) if lat else float("nan"),
         "cpu_s": cpu, "seconds": a.seconds, "expected_total": expect}
    if rcpu is not None:
        r["redis_cpu_s"] = rcpu
    log("%-16s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.1f ms, %d measured "
        "(%d expected in all), CPU %.2f s%s" %
        (name, r["p50_ms"], r["p99_ms"], r["p999_ms"], r["max_ms"],
         len(lat), expect, cpu,
         "" if rcpu is None else ", redis-server %.2f s" % rcpu))
    return r


def report(res, a):
    lines = ["## Latency (continuous trigger)\n",
             "Measured %s by tests/bench/latency.py: %d records/s for %d s "
             "(the first %.0f s not counted) from a confluent-kafka producer "
             "(linger.ms 1, counted in the latency) to a topic of 4 partitions on `sluice "
             "mock-kafka`, each record carrying its send time; latency is "
             "the time until a reader in the benchmark saw the record "
             "written by the target. Every consumer runs with "
             "fetch.wait.max.ms %d: the mock cluster holds a fetch that "
             "long even when records arrive. A Redis target writes to a "
             "redis-server of its own on 127.0.0.1 (no persistence) and "
             "is read by a subscriber to the channel its PUBLISH commands "
             "write. CPU is the target's own, over the producing time "
             "(redis-server's is given apart). Ratios are to the floor of "
             "the same run: redis-floor for the Redis targets, floor for "
             "the others.\n" %
             (time.strftime("%Y-%m-%d"), a.rate, a.seconds, WARMUP_S,
              a.fetch_wait_ms),
             "| target | p50 ms | p99 ms | p99.9 ms | max ms | records "
             "measured | CPU s | p99 ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rcpu = []
    for name in TARGETS:
        r = res.get(name)
        if not r:
            continue
        base = "redis-floor" if name in REDIS_TARGETS else "floor"
        ratio = "%.2f × %s" % (r["p99_ms"] / res[base]["p99_ms"], base) \
            if base in res else "–"
        lines.append("| %s | %.3f | %.3f | %.3f | %.1f | %d | %.2f | %s |" %
                     (name, r["p50_ms"], r["p99_ms"], r["p999_ms"],
                      r["max_ms"], r["measured"], r["cpu_s"], ratio))
        if "redis_cpu_s" in r:
            rcpu.append("%.2f s under %s" % (r["redis_cpu_s"], name))
    if rcpu:
        lines.append("\nredis-server's CPU over the producing time: %s.\n"
                     % ", ".join(rcpu))
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- latency results: begin -->", "<!-- latency results: end -->"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--report")
    ap.add_argument("--fetch-wait-ms", type=int, default=1,
                    help="fetch.wait.max.ms of every consumer: the mock "
                    "cluster holds a fetch for all of it even when records "
                    "arrive (a real broker answers at once), so on the mock "
                    "this bounds the latency from below")
    ap.add_argument("--json")
    ap.add_argument("--targets", default=",".join(TARGETS))
    a = ap.parse_args()
    for name in a.targets.split(","):
        if name not in TARGETS:
            ap.error("unknown target %r (one of %s)" %
                     (name, ", ".join(TARGETS)))
    build = os.path.abspath(a.build)
    sluice = os.path.join(build, "sluice")
    a.echo = os.path.join(build, "tests", "bench_echo")
    work = tempfile.mkdtemp(prefix="sluice-latency-")
    res = {}
    for name in a.targets.split(","):
        # a cluster of its own per target: a run leaves nothing behind for
        # the next one (its topics, consumers and producers)
        mock = subprocess.Popen([sluice, "mock-kafka", "--topic", "lat:4",
                                 "--topic", "out:4"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        brokers = mock.stdout.readline().strip()
        if not brokers:
            raise SystemExit("latency: sluice mock-kafka did not start")
        os.environ["BENCH_FETCH_WAIT_MS"] = str(a.fetch_wait_ms)
        srv = None
        try:
            if name in REDIS_TARGETS:
                srv = start_redis(work, name)
            ck = os.path.join(work, name + "-ckpt")
            if name in FLOORS:
                argv = [a.echo, brokers, "lat"]
                if srv:
                    argv += ["--redis", "127.0.0.1:%d" % srv[1]]
                out = None
            else:
                trig = "{ interval: 100ms }" if name == "interval" else \
                    "{ continuous: 100ms }"
                if name == "kafka-alo":
                    sink = "kafka: { brokers: %s, topic: out }" % brokers
                elif srv:
                    # block style: a flow sequence would take the
                    # templates' braces for flow mappings
                    sink = ("redis:\n"
                            "    url: redis://127.0.0.1:%d/0\n"
                            "    command:\n"
                            "      - SET lat:{id} {t}\n"
                            "      - PUBLISH lat {t}" % srv[1])
                else:
                    sink = "console: { limit: 0 }"
                path = os.path.join(work, name + ".yaml")
                with open(path, "w") as f:
                    f.write(job_yaml(brokers, trig, sink, ck, a.fetch_wait_ms))
                argv = [sluice, "run", path, "--progress", "none"]
                out = "out" if name == "kafka-alo" else None
            res[name] = measure(name, argv, brokers, a, work, out, srv)
        finally:
            if srv:
                srv[0].terminate()
                srv[0].wait(10)
            mock.terminate()
            mock.wait(10)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.report:
        write_report(a.report, report(res, a), BEGIN, END)


if __name__ == "__main__":
    main()
