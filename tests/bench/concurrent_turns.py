"""Benchmark: many concurrent turns against the fake provider, each
streaming 20 tokens over 10 s (issue "Turns"). Prints whether all
completed, the runner's peak RSS and its CPU use over the run, next to the
same figures for the fake provider process itself (the reference: the
cost of merely serving those streams)."""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evr import api, psql, stack_pid, BUILDDIR  # noqa: E402
from benchlib import pool  # noqa: E402
import figures  # noqa: E402

N = int(os.environ.get("BENCH_CONCURRENT", "1000"))
HZ = os.sysconf("SC_CLK_TCK")


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / HZ
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return cpu, rss


def main():
    fake = subprocess.Popen([os.path.join(BUILDDIR, "tests", "fake-llm", "fake-llm"), "0"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    port = int(fake.stdout.readline().split()[1])
    base = "http://127.0.0.1:%d" % port
    try:
        prv = api("POST", "/api/v1/llm-providers", {"name": "fake", "provider_type": "openai_completions",
                                                    "base_url": base + "/v1"}).json["id"]
        mod = api("POST", "/api/v1/llm-providers/%s/models" % prv, {"model_id": "bench-stream"}).json["id"]
        script = {"text": " ".join("tok%d" % i for i in range(20)), "chunks": 20, "delay_ms": 500}
        req = urllib.request.Request(base + "/_script", data=json.dumps(
            {"model": "bench-stream", "responses": [script] * N}).encode(), method="POST")
        urllib.request.urlopen(req).read()
        harness = api("GET", "/api/v1/harnesses/base").json["id"]
        sids = []
        lock = threading.Lock()

        def mk(_):
            r = api("POST", "/api/v1/sessions", {"harness_id": harness, "model_id": mod})
            with lock:
                sids.append(r.json["id"])
        pool(mk, N)
        runner = stack_pid("runner")
        cpu0, rss0 = proc_stats(runner)
        fcpu0, _ = proc_stats(fake.pid)
        t0 = time.monotonic()

        def post(i):
            r = api("POST", "/api/v1/sessions/%s/messages" % sids[i], {"message": {"content": "go"}})
            assert r.status == 201, r.text
        pool(post, N)
        posted = time.monotonic() - t0
        peak, fpeak = rss0, 0
        while time.monotonic() - t0 < 120:
            _, rss = proc_stats(runner)
            _, frss = proc_stats(fake.pid)
            peak, fpeak = max(peak, rss), max(fpeak, frss)
            active = int(psql("SELECT count(*) FROM sessions WHERE status = 'active'")[0][0])
            if active == 0:
                break
            time.sleep(0.5)
        wall = time.monotonic() - t0
        cpu1, _ = proc_stats(runner)
        fcpu1, _ = proc_stats(fake.pid)
        done = int(psql("SELECT count(*) FROM events WHERE type = 'turn.completed' AND session_id = ANY($1::uuid[])",
                        "{" + ",".join(s[4:] for s in sids) + "}")[0][0])
        print("  %d concurrent turns, 20 tokens over 10 s each (fake OpenAI-compatible provider)" % N)
        print("    completed %d of %d in %.1f s (posting took %.1f s)" % (done, N, wall, posted))
        print("    everruns-runner: peak RSS %.1f MB (idle %.1f MB), CPU %.2f s over %.1f s = %.2f cores"
              % (peak / 1e6, rss0 / 1e6, cpu1 - cpu0, wall, (cpu1 - cpu0) / wall))
        print("    reference, the fake provider serving the streams: peak RSS %.1f MB, %.2f cores"
              % (fpeak / 1e6, (fcpu1 - fcpu0) / wall))
        figures.record("concurrent turns completed", done, "turns")
        figures.record("concurrent turns, wall time", wall, "s", better="lower", kind="throughput")
        figures.record("runner peak RSS, %d concurrent turns" % N, peak / 1e6, "MB", better="lower",
                       reference="idle %.1f MB" % (rss0 / 1e6))
        figures.record("runner CPU, %d concurrent turns" % N, (cpu1 - cpu0) / wall, "cores", better="lower",
                       reference="fake provider %.2f cores" % ((fcpu1 - fcpu0) / wall))
    finally:
        fake.kill()


if __name__ == "__main__":
    main()
