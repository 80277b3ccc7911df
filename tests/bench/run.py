#!/usr/bin/python3
"""The benchmark suite (`make bench`): every workload reads the same
records from the same embedded Kafka cluster, a `sluice mock-kafka`
process of its own, and is measured from outside (wall time from spawn to
exit, user+system CPU seconds and peak RSS from wait4), the median of
--runs runs (5 by default) taken in rounds, one run of each workload per
round. Writes the results as JSON, a Markdown report and a gnuplot
chart.

    run.py --build DIR [--records N] [--partitions P] [--runs R]
           [--out DIR] [--report FILE.md] [--chart FILE.png]

Workloads (docs/benchmarks.md explains each):
  W0       tests/bench_consume, a bare tuned librdkafka consumer (the floor)
  W1       sluice, parse/filter/select to an exactly-once file sink
  W1-1w    the same with one worker
  W1-b100k the same with the default max_records_per_batch (100000)
  W2       sluice, 10 s tumbling sum/count by user to Redis, exactly once
  peer-W1  tests/bench/peer.py w1, a confluent-kafka loop doing W1's work
  peer-W2  tests/bench/peer.py w2, the same for W2
  startup  sluice run of an available-now job over one record
Every run's output is checked against the peer's (same number of output
records for W1, the same Redis hashes for W2): a fast wrong answer fails.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    """User+system CPU seconds a running process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def measure(argv, env=None, stdout=None, stderr=None, helpers=(),
            watch=None):
    """Runs argv to completion: wall, cpu and peak RSS of the process (and
    of its children), and the CPU the helper processes (broker, Redis)
    used meanwhile. watch, when given, is started with the spawn time
    (watch.start(t0)) and stopped once the process has exited
    (tests/bench/peers/compare.py follows the output with it)."""
    before = [proc_cpu_s(p.pid) for p in helpers]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
    if watch:
        watch.start(t0)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if watch:
        watch.stop()
    p.returncode = os.waitstatus_to_exitcode(status)
    helper_cpu = sum(proc_cpu_s(h.pid) - b for h, b in zip(helpers, before))
    return {
        "t0": t0,
        "rc": p.returncode,
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_bytes": ru.ru_maxrss * 1024,
        "helper_cpu_s": helper_cpu,
    }



def same_digest(a, b):
    """W2 digests (order count, total amount) agree: the count exactly,
    the float total up to its summation order."""
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6 * abs(b[1]) + 1e-6

class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build)
        self.sluice = os.path.join(self.build, "sluice")
        self.consume = os.path.join(self.build, "tests", "bench_consume")
        self.work = tempfile.mkdtemp(prefix="sluice-bench-")
        self.procs = []
        self.results = {}

    # ------------------------------------------------------------ set-up
    def start_mock(self):
        p = subprocess.Popen(
            [self.sluice, "mock-kafka", "--topic",
             "clicks:%d" % self.a.partitions, "--topic", "one:1"],
            stdout=subprocess.PIPE, stderr=open(self.path("mock.err"), "w"),
            text=True)
        self.procs.append(p)
        line = p.stdout.readline().strip()
        if not line:
            raise SystemExit("bench: sluice mock-kafka did not start: " +
                             open(self.path("mock.err")).read())
        self.mock, self.brokers = p, line
        log("embedded Kafka cluster at", line)

    def start_redis(self):
        port = free_port()
        d = self.path("redis")
        os.makedirs(d)
        p = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--dir", d, "--save", "", "--appendonly", "no"],
            stdout=open(self.path("redis.log"), "w"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if p.poll() is not None:
                break
            time.sleep(0.02)
        else:
            raise SystemExit("bench: redis-server did not answer")
        self.redis, self.redis_port = p, port

    def redis_cmd(self, *args):
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "--raw"] + list(args),
            check=True, capture_output=True, text=True).stdout
        return out.strip()

    def produce(self, topic, count, seed):
        t0 = time.monotonic()
        subprocess.run([self.sluice, "produce", "--brokers", self.brokers,
                        "--topic", topic, "--count", str(count), "--seed",
                        str(seed)], check=True, stderr=subprocess.DEVNULL)
        log("produced %d records to %s in %.1f s" %
            (count, topic, time.monotonic() - t0))

    def path(self, *p):
        return os.path.join(self.work, *p)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    # --------------------------------------------------------- workloads
    def env(self, out):
        e = dict(os.environ)
        e.update(BENCH_BROKERS=self.brokers, BENCH_OUT=out,
                 BENCH_REDIS="redis://127.0.0.1:%d/0" % self.redis_port,
                 BENCH_WATERMARK="%dms" % self.a.watermark_ms)
        return e

    def fresh(self, name):
        d = self.path("runs", name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def run_sluice(self, job, name, extra=(), log_level="info", batch=None,
                   env_extra=None, watch=None):
        out = self.fresh(name)
        errf = os.path.join(out, "stderr")
        env = self.env(out)
        env.update(env_extra or {})
        if batch:
            env["BENCH_BATCH"] = str(batch)
        with open(errf, "w") as err:
            m = measure([self.sluice, "run", os.path.join(HERE, "jobs", job),
                         "--log-level", log_level] + list(extra),
                        env=env, stdout=subprocess.DEVNULL,
                        stderr=err, helpers=(self.mock, self.redis),
                        watch=watch)
        m["stderr"] = open(errf).read()
        if m["rc"] != 0:
            raise SystemExit("bench: %s failed (exit %d):\n%s" %
                             (name, m["rc"], m["stderr"][-3000:]))
        m["dir"] = out
        return m

    def w0(self):
        with tempfile.TemporaryFile("w+") as out:
            m = measure([self.consume, self.brokers, "clicks",
                         str(self.a.records)], stdout=out,
                        helpers=(self.mock,))
            out.seek(0)
            r = json.loads(out.read())
        if m["rc"] != 0 or r["records"] != self.a.records:
            raise SystemExit("bench: W0 failed: %r" % r)
        self.bytes = r["bytes"]
        self.librdkafka = r["librdkafka"]
        m["first_record_s"] = r["first_record_s"]
        m["out"] = r["records"]
        return m

    def w1(self, workers, batch=None):
        m = self.run_sluice("w1.yaml", "w1", ["--set", "workers=%d" % workers],
                            batch=batch)
        out = os.path.join(m["dir"], "w1")
        n = 0
        for f in os.listdir(out):
            if f.startswith("part-"):
                with open(os.path.join(out, f), "rb") as fh:
                    n += fh.read().count(b"\n")
        m["out"] = n
        return m

    def w2(self):
        self.redis_cmd("FLUSHALL")
        m = self.run_sluice("w2.yaml", "w2")
        m["out"] = int(self.redis_cmd("EVAL",
                                      "return #redis.call('KEYS','w2:*')",
                                      "0"))
        m["digest"] = self.w2_digest()
        return m

    def w2_digest(self):
        """(sum of orders, sum of totals) over every w2:* hash."""
        script = ("local o, t = 0, 0 "
                  "for _, k in ipairs(redis.call('KEYS', 'w2:*')) do "
                  "o = o + tonumber(redis.call('HGET', k, 'orders')) "
                  "t = t + tonumber(redis.call('HGET', k, 'total')) end "
                  "return {o, tostring(t)}")
        o, t = self.redis_cmd("EVAL", script, "0").split("\n")
        return int(o), float(t)

    def peer(self, which):
        out = self.fresh("peer-" + which)
        if which == "w1":
            argv = [os.path.join(HERE, "peer.py"), "w1", self.brokers,
                    "clicks", os.path.join(out, "out.jsonl")]
        else:
            self.redis_cmd("FLUSHALL")
            argv = [os.path.join(HERE, "peer.py"), "w2", self.brokers,
                    "clicks", "redis://127.0.0.1:%d/0" % self.redis_port,
                    str(self.a.watermark_ms)]
        with open(os.path.join(out, "stdout"), "w+") as so:
            m = measure(["/usr/bin/python3"] + argv, stdout=so,
                        helpers=(self.mock, self.redis))
            so.seek(0)
            text = so.read()
        if m["rc"] != 0:
            raise SystemExit("bench: peer %s failed (exit %d)" %
                             (which, m["rc"]))
        r = json.loads(text)
        if r["records"] != self.a.records:
            raise SystemExit("bench: peer %s read %d records, not %d" %
                             (which, r["records"], self.a.records))
        m["out"] = r["out"]
        if which == "w2":
            m["digest"] = self.w2_digest()
        return m

    def startup(self):
        # Start-up includes several fsyncs (checkpoint, sink, commit); with
        # the previous workloads' files still being written back, one took
        # ~40 ms now and then. Measure from a quiet disk.
        os.sync()
        m = self.run_sluice("startup.yaml", "startup", log_level="debug")
        g = re.search(r"first commit [0-9.]+ ms after start "
                      r"\(monotonic ([0-9.]+) s\)", m["stderr"])
        if not g:
            raise SystemExit("bench: startup: no first commit logged:\n" +
                             m["stderr"][-2000:])
        m["first_commit_s"] = float(g.group(1)) - m["t0"]
        m["out"] = 1
        return m

    def failpoints(self):
        """The cost of the unarmed crash points: ns per call from
        bench_failpoint, and how many points one W1 run passes (counted
        from a run with every point armed as sleep(0), which announces each
        hit and goes on)."""
        p = subprocess.run([os.path.join(self.build, "tests", "bench_failpoint"),
                            str(self.a.failpoint_calls)],
                           capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        names = [line.split()[0] for line in subprocess.run(
            [self.sluice, "failpoints"], capture_output=True, text=True,
            check=True).stdout.splitlines() if line.strip()]
        spec = ";".join(n + "=sleep(0)" for n in names)
        m = self.run_sluice("w1.yaml", "w1-failpoints", ["--set", "workers=2"],
                            env_extra={"SLUICE_FAILPOINTS": spec})
        r["points"] = len(names)
        r["hits_w1"] = m["stderr"].count("sluice: failpoint ")
        self.results["failpoints"] = r
        log("failpoints: %.3f ns per call plain, %.3f with a point; %d hits "
            "in a W1 run" % (r["plain_ns"], r["marked_ns"], r["hits_w1"]))

    # ------------------------------------------------------------ driver
    def repeat(self, name, fn, runs):
        return self.rounds([(name, fn)], runs)

    def rounds(self, workloads, runs):
        """Runs the workloads in turns, one run of each per round, so that
        a slow spell of the machine falls on all of them alike, not on
        whichever ran then; keeps the median of each."""
        ms = {name: [] for name, _ in workloads}
        for i in range(runs):
            for name, fn in workloads:
                m = fn()
                log("%-8s run %d: %.3f s wall, %.3f s CPU, %.1f MB peak RSS" %
                    (name, i + 1, m["wall_s"], m["cpu_s"],
                     m["peak_rss_bytes"] / 1e6))
                if ms[name] and "digest" in m and \
                        not same_digest(m["digest"], ms[name][0]["digest"]):
                    raise SystemExit("bench: %s run %d wrote %r, run 1 %r" %
                                     (name, i + 1, m["digest"],
                                      ms[name][0]["digest"]))
                ms[name].append(m)
        for name, _ in workloads:
            self.summarize(name, ms[name])

    def summarize(self, name, ms):
        keys = ("wall_s", "cpu_s", "peak_rss_bytes", "helper_cpu_s",
                "first_record_s", "first_commit_s")
        r = {"runs": [{k: m[k] for k in keys if k in m} for m in ms],
             "out": ms[-1]["out"]}
        for k in keys:
            if k in ms[0]:
                r[k] = statistics.median(m[k] for m in ms)
        if "digest" in ms[-1]:
            r["digest"] = ms[-1]["digest"]
        if name != "startup":
            r["records_per_s"] = self.a.records / r["wall_s"]
            r["cpu_ns_per_record"] = r["cpu_s"] * 1e9 / self.a.records
        self.results[name] = r
        return r

    def check(self):
        """The workloads agree on their answers."""
        res = self.results
        for w in ("W1", "W1-1w", "W1-b100k"):
            if res[w]["out"] != res["peer-W1"]["out"]:
                raise SystemExit("bench: %s wrote %d records, the peer %d" %
                                 (w, res[w]["out"], res["peer-W1"]["out"]))
        s, p = res["W2"], res["peer-W2"]
        if s["out"] != p["out"] or not same_digest(s["digest"], p["digest"]):
            raise SystemExit("bench: W2 wrote %d hashes %r, the peer %d %r" %
                             (s["out"], s["digest"], p["out"], p["digest"]))

    def main(self):
        a = self.a
        try:
            self.start_mock()
            self.start_redis()
            self.produce("clicks", a.records, 1)
            self.produce("one", 1, 2)
            runs = a.runs
            self.rounds([("W0", self.w0),
                         ("W1", lambda: self.w1(2)),
                         ("W1-1w", lambda: self.w1(1)),
                         ("W1-b100k", lambda: self.w1(2, 100000)),
                         ("W2", self.w2),
                         ("peer-W1", lambda: self.peer("w1")),
                         ("peer-W2", lambda: self.peer("w2"))], runs)
            self.repeat("startup", self.startup, max(runs, a.startup_runs))
            self.failpoints()
            self.check()
        finally:
            self.stop()
        self.write()

    # ----------------------------------------------------------- reports
    def facts(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        try:
            with open("/etc/debian_version") as f:
                debian = f.read().strip()
        except OSError:
            debian = "not Debian"

        def version(argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True,
                                      timeout=10).stdout.strip()
            except OSError:
                return "not found"
        import confluent_kafka
        g = re.search(r"v=(\S+)", version(["redis-server", "--version"]))
        redis_version = g.group(1) if g else "unknown"
        cache = os.path.join(self.build, "CMakeCache.txt")
        build_type = "unknown"
        if os.path.exists(cache):
            g = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", open(cache).read(),
                          re.M)
            build_type = g.group(1) if g else build_type
        return {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(),
            "debian": debian,
            "sluice": version([self.sluice, "--version"]),
            "build_type": build_type,
            "librdkafka": self.librdkafka,
            "python": platform.python_version(),
            "confluent_kafka": confluent_kafka.version()[0],
            "redis": redis_version,
            "records": self.a.records,
            "partitions": self.a.partitions,
            "mean_record_bytes": round(self.bytes / self.a.records, 1),
            "runs": self.a.runs,
        }

    def write(self):
        facts = self.facts()
        res = self.results
        doc = {"facts": facts, "results": res}
        if self.a.json:
            with open(self.a.json, "w") as f:
                json.dump(doc, f, indent=1)
        if self.a.chart:
            self.chart(self.a.chart)
        if self.a.report:
            write_report(self.a.report,
                         report(doc, os.path.basename(self.a.chart or "")))
        log("done: " + ", ".join("%s %.0f rec/s" % (k, v["records_per_s"])
                                 for k, v in res.items()
                                 if "records_per_s" in v))

    def chart(self, png):
        names = ["W0", "W1", "W1-1w", "W1-b100k", "W2", "peer-W1", "peer-W2"]
        data = self.path("chart.dat")
        os.makedirs(self.work, exist_ok=True)
        with open(data, "w") as f:
            for n in names:
                r = self.results[n]
                f.write('"%s" %.0f %.1f\n' % (n, r["records_per_s"] / 1e3,
                                              r["peak_rss_bytes"] / 1e6))
        script = """
set terminal pngcairo size 900,420 noenhanced font ",10"
set output '%s'
set multiplot layout 1,2 title "sluice benchmarks: %d records on %d partitions, median of %d runs"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set xtics rotate by -30
unset key
set title "throughput (thousand records/s)"
plot '%s' using 0:2:xtic(1) with boxes lc rgb "#3a7ca5", '' using 0:2:(sprintf("%%.0f", $2)) with labels offset 0,0.7
set title "peak RSS (MB)"
plot '%s' using 0:3:xtic(1) with boxes lc rgb "#d9822b", '' using 0:3:(sprintf("%%.0f", $3)) with labels offset 0,0.7
unset multiplot
""" % (png, self.a.records, self.a.partitions, self.a.runs, data, data)
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def report(doc, chart_name):
    f, r = doc["facts"], doc["results"]
    w0, p1, p2 = r["W0"], r["peer-W1"], r["peer-W2"]
    lines = []
    add = lines.append
    add("## Results\n")
    add("Measured on %s: %s, %d cores, %.0f GiB, Linux %s, Debian %s. "
        "sluice %s (%s build), librdkafka %s, Python %s with "
        "confluent-kafka %s, Redis %s. %d records (%.0f bytes each on "
        "average) on %d partitions of one `sluice mock-kafka` process; "
        "each figure is the median of %d runs.\n" %
        (f["date"], f["cpu"], f["cores"], f["memory_gib"], f["kernel"],
         f["debian"], f["sluice"].replace("sluice ", ""), f["build_type"],
         f["librdkafka"], f["python"], f["confluent_kafka"], f["redis"],
         f["records"], f["mean_record_bytes"], f["partitions"], f["runs"]))
    add("| workload | records/s | × W0 | × peer | wall s | CPU s | "
        "CPU ns/record | peak RSS MB | broker+Redis CPU s |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ("W0", "W1", "W1-1w", "W1-b100k", "W2", "peer-W1",
                 "peer-W2"):
        x = r[name]
        peer = p2 if name.endswith("W2") else p1
        add("| %s | %.0f | %.2f | %s | %.2f | %.2f | %.0f | %.1f | %.2f |" %
            (name, x["records_per_s"], x["records_per_s"] / w0["records_per_s"],
             "%.1f" % (x["records_per_s"] / peer["records_per_s"])
             if name in ("W1", "W1-1w", "W1-b100k", "W2") else "",
             x["wall_s"], x["cpu_s"], x["cpu_ns_per_record"],
             x["peak_rss_bytes"] / 1e6, x["helper_cpu_s"]))
    rounds = list(zip(w0["runs"], r["W1"]["runs"], r["W2"]["runs"]))
    add("")
    add("Wall seconds of W0, W1 and W2 in each round: %s. W1's speed as a "
        "multiple of W0's in the same round: %s." %
        ("; ".join("%.2f, %.2f, %.2f" % (a["wall_s"], b["wall_s"], c["wall_s"])
                   for a, b, c in rounds),
         ", ".join("%.2f" % (a["wall_s"] / b["wall_s"])
                   for a, b, _ in rounds)))
    s = r["startup"]
    firsts = sorted(x["first_commit_s"] * 1e3 for x in s["runs"])
    w0_firsts = sorted(x["first_record_s"] * 1e3 for x in w0["runs"])
    add("")
    add("Startup (%d runs): `sluice run` of an available-now job over one "
        "record commits its first batch %.1f ms after it is spawned "
        "(median; fastest %.1f, slowest %.1f), connection to the cluster "
        "included, and exits after %.1f ms; peak RSS %.1f MB. The bare "
        "consumer (W0) got its first record %s ms after it started.\n" %
        (len(s["runs"]), s["first_commit_s"] * 1e3, firsts[0], firsts[-1],
         s["wall_s"] * 1e3, s["peak_rss_bytes"] / 1e6,
         ", ".join("%.1f" % x for x in w0_firsts)))
    add("W1 wrote %d records, as did the peer; W2 wrote %d Redis hashes, as "
        "did the peer, with the same order count and totals." %
        (r["W1"]["out"], r["W2"]["out"]))
    fp = r.get("failpoints")
    if fp:
        extra = max(fp["marked_ns"] - fp["plain_ns"], 0.0)
        add("")
        add("Crash points (tests/bench/failpoint.c): a call that passes an "
            "unarmed point took %.3f ns, the same call without it %.3f ns "
            "(medians of %d alternating rounds of %d calls), %.3f ns more. "
            "A W1 run passes %d points (all %d armed as sleep(0), which only "
            "counts), so together they cost about %.1f µs, %.5f%% of W1's "
            "median wall time." %
            (fp["marked_ns"], fp["plain_ns"], fp["rounds"], fp["iterations"],
             extra, fp["hits_w1"], fp["points"], fp["hits_w1"] * extra / 1e3,
             100.0 * fp["hits_w1"] * extra / 1e9 / r["W1"]["wall_s"]))
    if chart_name:
        add("\n![throughput and memory](%s)" % chart_name)
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- bench results: begin -->", "<!-- bench results: end -->"


def write_report(path, text, begin=BEGIN, end=END):
    """Replaces what stands between the markers of an existing report (the
    prose around them is kept), or appends them with the text."""
    body = "%s\n%s%s\n" % (begin, text, end)
    try:
        old = open(path).read()
    except FileNotFoundError:
        old = ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1]
        rest = tail.lstrip("\n")
        body = head + body + ("\n" + rest if rest else "")
    elif old:
        body = old.rstrip("\n") + "\n\n" + body
    with open(path + ".tmp", "w") as f:
        f.write(body)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", required=True, help="a build directory")
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--startup-runs", type=int, default=10)
    ap.add_argument("--failpoint-calls", type=int, default=100_000_000,
                    help="calls per round of the crash-point cost")
    ap.add_argument("--watermark-ms", type=int, default=300_000,
                    help="W2's watermark delay")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--from-json", help="only rewrite the report and the "
                    "chart from the results a run saved with --json")
    ap.add_argument("--report", help="write the Markdown results here")
    ap.add_argument("--chart", help="write the PNG chart here")
    a = ap.parse_args()
    if a.records * 110 / a.partitions > 4.5e6:
        ap.error("%d records on %d partitions exceed the embedded cluster's "
                 "~5 MB per partition: use more partitions" %
                 (a.records, a.partitions))
    b = Bench(a)
    if a.from_json:
        # Rewrite the report and the chart from a saved run.
        doc = json.load(open(a.from_json))
        b.results, b.facts = doc["results"], lambda: doc["facts"]
        a.records = doc["facts"]["records"]
        a.partitions = doc["facts"]["partitions"]
        a.runs = doc["facts"]["runs"]
        a.json = None
        b.write()
        shutil.rmtree(b.work, ignore_errors=True)
        return
    b.main()


if __name__ == "__main__":
    main()
