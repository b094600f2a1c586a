"""Does the `edgetl bench` harness add measurable overhead? Its p50 against a bare `session.run` loop on the
same model, interleaved in one process (ABBA order over several rounds, so drift on a shared machine hits
both alike). Pass: the median over rounds of (edgetl p50 / bare p50) is at most 1.03 (overhead can only add
time; a ratio below 1 is noise and is reported as such, with the two-sided check beside it).

    nice -n 10 .venv/bin/python benchmarks/harness_overhead.py                  # quickstart-vision artifacts
    .venv/bin/python benchmarks/harness_overhead.py --model some.onnx --rounds 8

Writes benchmarks/results/harness_overhead.json and .md; exit code 1 when the 3 % bound is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "runs" / "quickstart-vision"


def bare_session(path: Path, threads: int):
    """A session made with the plain onnxruntime API and the same settings edgetl documents."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def bare_feed(session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for i in session.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in i.shape]
        feed[i.name] = (rng.standard_normal(shape).astype(np.float32) if "float" in i.type
                        else rng.integers(1000, 2000, shape).astype(np.int64))
    return feed


def bare_loop(session, feed, n: int, warmup_s: float) -> list[float]:
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        session.run(None, feed)
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def edgetl_p50(path: Path, threads: int, n: int, warmup_s: float) -> tuple[float, int]:
    from edgetl.bench.runner import BenchOptions, run_benchmark, target_from_path

    opts = BenchOptions(backends=["ort-cpu"], threads=threads, iterations=n, warmup_seconds=warmup_s, power=False,
                        model_stats=False, chunk=n)
    row = run_benchmark(target_from_path(path), opts)["results"][0]
    return row["latency_ms"]["p50"], row["latency_ms"]["n"]


def loop_p50(session, feed, threads: int, n: int, warmup_s: float) -> float:
    """edgetl's timing loop alone (prepare + time_interleaved + summarize) on the bare session: the pure
    per-iteration overhead of the harness, without the session edgetl would make."""
    from edgetl.backends.onnxruntime import OrtModel
    from edgetl.bench.protocol import summarize, time_interleaved

    fn = OrtModel(session, "ort-cpu", threads).prepare(feed)
    return summarize(time_interleaved({"m": fn}, iterations=n, chunk=n, warmup_seconds=warmup_s)["m"])["p50"]


def measure(path: Path, threads: int, rounds: int, n: int, warmup_s: float) -> dict:
    session = bare_session(path, threads)
    feed = bare_feed(session)
    per_round = []
    for r in range(rounds):
        order = ("bare", "edgetl", "loop") if r % 2 == 0 else ("loop", "edgetl", "bare")  # ABBA over rounds
        got = {}
        for who in order:
            if who == "bare":
                got["bare"] = float(np.percentile(bare_loop(session, feed, n, warmup_s), 50))
            elif who == "edgetl":
                got["edgetl"], _ = edgetl_p50(path, threads, n, warmup_s)
            else:
                got["loop"] = loop_p50(session, feed, threads, n, warmup_s)
        per_round.append({"round": r, "order": list(order), "bare_p50": got["bare"], "edgetl_p50": got["edgetl"],
                          "loop_p50": got["loop"], "ratio": got["edgetl"] / got["bare"],
                          "loop_ratio": got["loop"] / got["bare"]})
    ratios = [x["ratio"] for x in per_round]
    return {"model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "threads": threads,
            "rounds": rounds, "iterations_per_round": n, "per_round": per_round,
            "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "loop_median_ratio": statistics.median(x["loop_ratio"] for x in per_round),
            "bare_p50_median": statistics.median(x["bare_p50"] for x in per_round),
            "edgetl_p50_median": statistics.median(x["edgetl_p50"] for x in per_round)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", type=Path, help="ONNX file (repeatable); default: quickstart-vision's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--bound", type=float, default=0.03)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    models = args.model
    if not models:
        from edgetl.bench.runner import targets_from_run

        if not (DEFAULT_RUN / "manifest.json").exists():
            print(f"{DEFAULT_RUN} is missing: run `edgetl compress recipes/quickstart-vision.yaml --out {DEFAULT_RUN}` "
                  "or pass --model", file=sys.stderr)
            return 2
        models = [t.path for t in targets_from_run(DEFAULT_RUN) if t.format == "onnx"]
    from edgetl.bench.fingerprint import environment, machine_fingerprint

    results = [measure(Path(m).resolve(), args.threads, args.rounds, args.iterations, args.warmup) for m in models]
    for r in results:
        r["passed"] = r["median_ratio"] <= 1 + args.bound
        r["within_two_sided"] = abs(r["median_ratio"] - 1) <= args.bound
    ok = all(r["passed"] for r in results)
    doc = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "bound": args.bound, "passed": ok,
           "machine_fingerprint": machine_fingerprint(), "environment": environment(), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "harness_overhead.json").write_text(json.dumps(doc, indent=2))
    lines = [f"# Harness overhead ({doc['created']}, machine `{doc['machine_fingerprint']}`)", "",
             f"`edgetl bench` p50 / bare `session.run` p50, {args.rounds} rounds x {args.iterations} iterations, "
             f"ABBA order over rounds, {args.threads} threads. Pass: edgetl at most {100 * args.bound:.0f} % above bare "
             f"(two-sided |ratio - 1| <= {100 * args.bound:.0f} % shown too). Load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end.", "",
             "`edgetl bench` = the whole `run_benchmark` (its own session, warm-up, interleaved timer, stats); "
             "`timing loop only` = edgetl's timer on the bare session (pure per-iteration harness cost).", "",
             "| model | bare p50 ms | edgetl p50 ms | median ratio edgetl/bare | min..max | timing loop only / bare | "
             "overhead <= 3 % | two-sided |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['bare_p50_median']:.4f} | {r['edgetl_p50_median']:.4f} | "
                     f"{r['median_ratio']:.4f} | {r['min_ratio']:.3f}..{r['max_ratio']:.3f} | {r['loop_median_ratio']:.4f} | "
                     f"{'pass' if r['passed'] else 'FAIL'} | {'yes' if r['within_two_sided'] else 'no (noise)'} |")
    (args.out / "harness_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
