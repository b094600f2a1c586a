"""How much faster is the INT8 ONNX than the FP32 ONNX on this CPU, and how much does that ratio move?

The pipeline's benchmark stage measures one interleaved run; on this shared 2-core machine the p50 ratio of the
same two files moved between 1.6x and 3.5x across runs (load slows FP32 more than INT8). This script repeats the
interleaved `edgetl bench` measurement (ONNX Runtime CPU, batch 1, 2 threads) for several rounds and adds a
load-independent view: the sum of ONNX Runtime's per-node kernel times (its profiler), which counts compute only.

    nice .venv/bin/python benchmarks/int8_speedup.py                    # runs/vision-qat, 5 rounds
    .venv/bin/python benchmarks/int8_speedup.py --run runs/text-qat --int8 qat_int8_onnxruntime ptq_int8

Writes benchmarks/results/int8_speedup/<run name>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def node_kind(args: dict) -> str:
    """A profiled node's group: convolutions by shape (stem = 3 input channels, depthwise = as many output as
    input channels, else pointwise), other nodes by op type."""
    op = args["op_name"]
    if op not in ("Conv", "FusedConv", "QLinearConv"):
        return op
    x = next(iter(args["input_type_shape"][0].values()))
    y = next(iter(args["output_type_shape"][0].values()))
    channel = 3 if op == "QLinearConv" else 1  # ONNX Runtime runs int8 convolutions NHWC, float ones NCHW(c)
    cin, cout = x[channel], y[channel]
    return "conv: stem" if cin == 3 else "conv: depthwise" if cin == cout else "conv: pointwise"


def kernel_times_us(paths: dict[str, Path], feed: dict, threads: int, runs: int, chunk: int = 20
                    ) -> dict[str, dict[str, float]]:
    """Median per-run kernel time (us) from ONNX Runtime's profiler, in total and per node group, the models run
    in interleaved chunks (as the wall-clock rounds are) so that drift on a shared machine hits all alike."""
    import onnxruntime as ort

    sessions = {}
    for name, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
        sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(0, runs + 20, chunk):
        for sess in sessions.values():
            for _ in range(chunk):
                sess.run(None, feed)
    out = {}
    for name, sess in sessions.items():
        events = json.loads(Path(sess.end_profiling()).read_text())
        runs_seen: list[dict[str, float]] = []
        current: dict[str, float] = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                kind = node_kind(e["args"])
                current[kind] = current.get(kind, 0.0) + e["dur"]
            elif e.get("cat") == "Session" and e["name"] == "model_run":
                runs_seen.append(current)
                current = {}
        steady = runs_seen[20:] or runs_seen  # the first 20: warm-up
        kinds = sorted({k for r in steady for k in r})
        groups = {k: round(statistics.median(r.get(k, 0.0) for r in steady), 1) for k in kinds}
        out[name] = {"total": round(statistics.median(sum(r.values()) for r in steady), 1), "groups": groups}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "vision-qat")
    ap.add_argument("--fp32", default="onnx_fp32")
    ap.add_argument("--int8", nargs="+", default=["qat_int8_onnxruntime", "ptq_int8"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", help="results file name (default: the run folder's name)")
    args = ap.parse_args()

    from edgetl.bench.fingerprint import environment
    from edgetl.bench.runner import BenchOptions, run_benchmark, targets_from_run

    names = [args.fp32, *args.int8]
    targets = targets_from_run(args.run, names)
    opts = BenchOptions(threads=args.threads, iterations=args.iterations, accuracy=False, model_stats=False,
                        power=False, warmup_seconds=0.5)
    rounds = []
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        res = run_benchmark(targets, BenchOptions(**{**opts.to_dict(), "seed": r}))
        p50 = {row["model"]: row["latency_ms"]["p50"] for row in res["results"]}
        rounds.append({"round": r + 1, "loadavg_1m_before": round(load, 2), "p50_ms": p50,
                       "speedup": {n: round(p50[args.fp32] / p50[n], 3) for n in args.int8}})
        print(f"round {r + 1}: load {load:.2f} " + "  ".join(f"{n} {rounds[-1]['speedup'][n]:.2f}x" for n in args.int8),
              flush=True)
    import onnxruntime as ort

    loaded = {t.name: t for t in targets}
    sess = ort.InferenceSession(str(loaded[args.fp32].path), providers=["CPUExecutionProvider"])
    # batch 1; a dynamic sequence axis gets 64 tokens (the recipes' length)
    shapes = {i.name: [d if isinstance(d, int) else (1 if k == 0 else 64) for k, d in enumerate(i.shape)]
              for i in sess.get_inputs()}
    import numpy as np

    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(v).astype(np.float32) if "pixel" in k else np.ones(v, np.int64)
            for k, v in shapes.items()}
    kernels = kernel_times_us({n: loaded[n].path for n in names}, feed, args.threads, 200)
    totals = {n: kernels[n]["total"] for n in names}
    out = {"run": str(args.run.relative_to(ROOT)) if args.run.is_relative_to(ROOT) else str(args.run),
           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "environment": environment(),
           "threads": args.threads, "iterations_per_round": args.iterations, "rounds": rounds,
           "median_speedup": {n: round(statistics.median(r["speedup"][n] for r in rounds), 3) for n in args.int8},
           "kernel_time_us": totals, "kernel_time_by_group_us": {n: kernels[n]["groups"] for n in names},
           "kernel_speedup": {n: round(totals[args.fp32] / totals[n], 3) for n in args.int8}}
    dest = ROOT / "benchmarks" / "results" / "int8_speedup"
    dest.mkdir(parents=True, exist_ok=True)
    stem = args.name or args.run.name
    (dest / f"{stem}.json").write_text(json.dumps(out, indent=2))
    lines = [f"# INT8 vs FP32 speed-up: {stem}", "",
             f"{out['created']}, {out['environment'].get('cpu', '')}, ONNX Runtime CPU, batch 1, {args.threads} "
             f"threads, {args.rounds} rounds of {args.iterations} interleaved iterations each (p50 per round).", "",
             "| round | load (1 min) | " + " | ".join(f"{n} speed-up" for n in args.int8) + " |",
             "|---|---|" + "---|" * len(args.int8)]
    for r in rounds:
        lines.append(f"| {r['round']} | {r['loadavg_1m_before']} | "
                     + " | ".join(f"{r['speedup'][n]:.2f}x" for n in args.int8) + " |")
    lines.append("| **median** | | " + " | ".join(f"**{out['median_speedup'][n]:.2f}x**" for n in args.int8) + " |")
    lines += ["", "ONNX Runtime kernel time per inference, in us (profiler, median of 200 runs, models interleaved in "
              "chunks of 20; compute only, no waiting for the CPU), in total and by node group:", "",
              "| group | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| **total** | " + " | ".join(f"**{totals[n]:.0f}**" for n in names) + " |")
    lines.append("| speed-up | 1.00x | " + " | ".join(f"{out['kernel_speedup'][n]:.2f}x" for n in args.int8) + " |")
    groups = sorted({g for n in names for g in kernels[n]["groups"]})
    for g in groups:
        lines.append(f"| {g} | " + " | ".join(f"{kernels[n]['groups'].get(g, 0):.0f}" for n in names) + " |")
    (dest / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
