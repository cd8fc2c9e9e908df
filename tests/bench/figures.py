"""Figures of a benchmark run, kept for the report and for comparisons.

Every benchmark prints its figures as text (that stays the interface for
people); it also records each one here, so that `tests/bench/run` can
write one machine-readable file of the whole run (figures.json) and a
page of plots (report.html), and `tests/bench/compare OLD NEW` can put
two runs side by side.

A figure is one JSON object per line in the file named by
$BENCH_FIGURES (nothing is recorded when it is unset, so a benchmark run
by hand behaves as before):

    {"bench": "api_read", "name": "API GET session, 64 conns",
     "value": 4600.0, "unit": "req/s", "better": "higher",
     "kind": "throughput" | "latency" | "ratio",
     "target": 0.6,                   # ratios: the issue's target, if any
     "reference": "pipeline limit",   # what it is measured against
     "pcts": [[50, 1.2], [99, 3.4]],  # latencies: the distribution
     "samples": [...]}                # latencies: raw samples, if few

`bench` comes from $BENCH_NAME (set by tests/bench/run for each script).

From Python:  figures.record(name, value, unit, ...)
From shell:   python3 figures.py record NAME VALUE UNIT [--better lower]
              [--kind ratio] [--target X] [--reference TEXT]
              [--pcts 50:1.2,99:3.4]
"""
import argparse
import json
import os
import sys

MAX_SAMPLES = 20000  # more are reduced to their percentiles


def pct(xs, p):
    """The p-th percentile of xs (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


PCT_POINTS = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)


def record(name, value, unit, better="higher", kind=None, target=None,
           reference=None, pcts=None, samples=None):
    path = os.environ.get("BENCH_FIGURES")
    if not path:
        return
    if kind is None:
        kind = "latency" if unit in ("ms", "us", "s") else "throughput"
    fig = {"bench": os.environ.get("BENCH_NAME", ""), "name": name,
           "value": float(value), "unit": unit, "better": better,
           "kind": kind}
    if target is not None:
        fig["target"] = float(target)
    if reference:
        fig["reference"] = reference
    if samples:
        fig["pcts"] = [[p, pct(samples, p)] for p in PCT_POINTS]
        if len(samples) <= MAX_SAMPLES:
            fig["samples"] = [round(float(x), 4) for x in samples]
    elif pcts:
        fig["pcts"] = [[float(p), float(v)] for p, v in pcts]
    with open(path, "a") as f:
        f.write(json.dumps(fig) + "\n")


def latency(name, samples, better="lower", reference=None):
    """Record p50 and p99 of a list of latencies in ms, with the whole
    distribution on the p50 figure (one plot per measured distribution)."""
    record(name + " p50", pct(samples, 50), "ms", better, "latency",
           reference=reference, samples=samples)
    record(name + " p99", pct(samples, 99), "ms", better, "latency",
           reference=reference)


def main():
    ap = argparse.ArgumentParser(description="record one benchmark figure")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("name")
    r.add_argument("value", type=float)
    r.add_argument("unit")
    r.add_argument("--better", choices=("higher", "lower"), default=None)
    r.add_argument("--kind", choices=("throughput", "latency", "ratio"))
    r.add_argument("--target", type=float)
    r.add_argument("--reference")
    r.add_argument("--pcts", help="P:V,P:V,... (percentile: value)")
    a = ap.parse_args()
    pcts = None
    if a.pcts:
        pcts = [tuple(map(float, x.split(":"))) for x in a.pcts.split(",")]
    better = a.better
    if better is None:
        better = "lower" if (a.kind == "latency" or a.unit in ("ms", "us", "s", "MB")) else "higher"
    record(a.name, a.value, a.unit, better, a.kind, a.target, a.reference, pcts)


if __name__ == "__main__":
    sys.exit(main())
