"""edgetl against what a user would otherwise do, on both quickstarts, measured in one process and interleaved:

  torch-fp32      PyTorch eager FP32 (the fine-tuned model before export)
  ort-fp32        ONNX Runtime FP32 (edgetl's exported ONNX)
  ort-ptq         ONNX Runtime's own `quantize_static` on the unpruned FP32 ONNX, with its defaults (QDQ,
                  MinMax, per-tensor, QInt8/QInt8) and the same number of calibration samples: the path a user of
                  ONNX Runtime / Optimum's ORT quantizer takes
  ort-ptq-careful the same, as a careful user runs it: per-channel, QUInt8 activations, reduce_range only without
                  VNNI, the best of MinMax / Entropy / Percentile calibration on held-out training examples
  ort-dynamic     (text) `quantize_dynamic`, ONNX Runtime's advice for transformers
  edgetl:<name>   every other ONNX artifact of the edgetl run (its INT8, and pruned / distilled ones if the recipe
                  has them); the run's `final` is marked

Accuracy is measured on the recipe's own eval split by running each deployed file; latency is batch 1, fixed
threads, all variants of one quickstart interleaved. Optimum's ORT quantizer (optimum-onnx) pins
transformers < 4.58 and cannot install beside transformers 5, so it is not run (see benchmarks/README.md).

    nice -n 10 .venv/bin/python benchmarks/compare_peers.py            # both quickstarts (built when missing)
    nice -n 10 .venv/bin/python benchmarks/compare_peers.py --only vision-full --only text-full   # 224 px, 64 tokens
    .venv/bin/python benchmarks/compare_peers.py --only vision --iterations 100

Writes benchmarks/results/peers/{peers.json,peers.md,pareto.png}; the ORT PTQ models go to runs/peers/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUICKSTARTS = {"vision": ("recipes/quickstart-vision.yaml", "runs/quickstart-vision"),
               "text": ("recipes/quickstart-text.yaml", "runs/quickstart-text"),
               # the goal's sizes: 224 px / 64 tokens (full chains: an hour or more each on 2 cores)
               "vision-full": ("recipes/vision-full.yaml", "runs/vision-full"),
               "text-full": ("recipes/text-full.yaml", "runs/text-full")}
log = logging.getLogger("compare_peers")


def ort_ptq(fp32: Path, out_dir: Path, meta, train, samples: int, input_names: set[str]) -> Path:
    """ONNX Runtime's documented static PTQ path: quant_pre_process, then quantize_static with its defaults."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from edgetl.data.datasets import stratified_subset
    from edgetl.quant.peers import copy_sidecars
    from edgetl.quant.ptq import CalibrationReader, preprocess_for_quantization

    out_dir.mkdir(parents=True, exist_ok=True)
    pre = out_dir / "model.pre.onnx"
    preprocess_for_quantization(fp32, pre)  # quant_pre_process, retried without symbolic shapes for BERT
    idx = stratified_subset(train.labels, samples, 0)
    part = train.take(idx)
    encode = meta.encoder()
    batches = []
    for i in range(0, len(part), 16):
        feed = encode(part.inputs[i : i + 16])
        batches.append({k: v for k, v in feed.items() if k in input_names})
    out = out_dir / "model.onnx"
    quantize_static(str(pre), str(out), CalibrationReader(batches), quant_format=QuantFormat.QDQ)
    pre.unlink()
    copy_sidecars(fp32, out_dir)
    return out


def ensure_run(recipe: Path, run: Path) -> None:
    """Bring the run up to date with the recipe: finished stages are reused (about a second when nothing changed),
    so a recipe edited since the last run is never compared from stale artifacts."""
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import load_recipe

    log.info("running %s into %s (finished stages are reused)", recipe, run)
    compress(load_recipe(recipe), run, recipe_file=str(recipe))


def compare(name: str, iterations: int, threads: int, calib: int) -> dict:
    from edgetl.bench.runner import BenchOptions, run_benchmark, target_from_path
    from edgetl.data.datasets import load_data
    from edgetl.quant.peers import careful_ort_ptq, ort_dynamic_int8
    from edgetl.recipe.load import load_recipe

    recipe_path, run_rel = QUICKSTARTS[name]
    recipe, run = load_recipe(ROOT / recipe_path), ROOT / run_rel
    ensure_run(ROOT / recipe_path, run)
    manifest = json.loads((run / "manifest.json").read_text())
    report = json.loads((run / "report.json").read_text())
    arts = {a["name"]: a for a in manifest["artifacts"]}
    fp32 = next(a for a in manifest["artifacts"] if a["format"] == "onnx" and a["precision"] == "fp32"
                and a["stage"].split("-", 1)[1].startswith("export"))
    torch_art = arts[fp32["parent"]] if fp32.get("parent") in arts else next(
        a for a in manifest["artifacts"] if a["format"] == "pytorch")
    data = load_data(recipe.data)
    fp32_target = target_from_path(run / fp32["path"], name="ort-fp32")[0]
    import onnxruntime as ort

    names = {i.name for i in ort.InferenceSession(str(fp32_target.path), providers=["CPUExecutionProvider"]).get_inputs()}
    ptq_path = ort_ptq(fp32_target.path, ROOT / "runs" / "peers" / name / "ort_ptq", fp32_target.meta, data.train, calib,
                       names)
    peers_dir = ROOT / "runs" / "peers" / name
    careful_path, careful = careful_ort_ptq(fp32_target.path, peers_dir / "ort_ptq_careful", data.train, calib)
    targets = [target_from_path(run / torch_art["path"], name="torch-fp32")[0], fp32_target,
               target_from_path(ptq_path, name="ort-ptq")[0], target_from_path(careful_path, name="ort-ptq-careful")[0]]
    kinds = {"torch-fp32": "PyTorch eager FP32", "ort-fp32": "ONNX Runtime FP32",
             "ort-ptq": "ONNX Runtime quantize_static (defaults)",
             "ort-ptq-careful": f"ONNX Runtime quantize_static, careful ({careful['calibration']} calibration, "
                                "per-channel, QUInt8)"}
    if fp32_target.meta.task == "text":
        dynamic = ort_dynamic_int8(fp32_target.path, peers_dir / "ort_dynamic")
        targets.append(target_from_path(dynamic, name="ort-dynamic")[0])
        kinds["ort-dynamic"] = "ONNX Runtime quantize_dynamic (per-channel INT8 weights)"
    for a in manifest["artifacts"]:
        if a["format"] == "onnx" and a["name"] != fp32["name"]:
            t = target_from_path(run / a["path"], name=f"edgetl:{a['name']}")[0]
            targets.append(t)
            kinds[t.name] = f"edgetl {a['precision']}" + (" (final)" if a["name"] == report.get("final") else "")
    opts = BenchOptions(backends=None, threads=threads, iterations=iterations, warmup_seconds=0.5, power=False,
                        cpu_time=True)
    res = run_benchmark(targets, opts, eval_split=data.eval, label_names=data.label_names)
    rows = {r["model"]: r for r in res["results"]}
    torch_p50 = rows["torch-fp32"]["latency_ms"]["p50"]
    ort_p50 = rows["ort-fp32"]["latency_ms"]["p50"]
    torch_cpu = rows["torch-fp32"]["cpu_ms"]["p50"]
    table = []
    for r in res["results"]:
        lat = r["latency_ms"]
        table.append({"quickstart": name, "variant": r["model"], "what": kinds[r["model"]], "backend": r["backend"],
                      "accuracy": r["accuracy"], "eval_samples": r["eval_samples"], "p50_ms": lat["p50"],
                      "p90_ms": lat["p90"], "cov": lat["cov"], "n": lat["n"], "size_mb": r["size_bytes"] / 1e6,
                      "params": r.get("params"), "macs": r.get("macs"),
                      "cpu_p50_ms": r["cpu_ms"]["p50"], "speedup_vs_torch": torch_p50 / lat["p50"],
                      "cpu_speedup_vs_torch": torch_cpu / r["cpu_ms"]["p50"], "speedup_vs_ort_fp32": ort_p50 / lat["p50"],
                      "sha256": r["sha256"]})
    return {"quickstart": name, "recipe": recipe_path, "run": run_rel, "rows": table,
            "machine_fingerprint": res["machine_fingerprint"], "environment": res["environment"],
            "iterations": iterations, "threads": threads, "calibration_samples": calib, "seconds": res["seconds"],
            "careful_peer": careful,
            "load": res["load"]}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (lower latency and higher accuracy are better)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i):
            front.append(i)
    return front


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), dpi=100, squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        rows = res["rows"]
        pts = [(r["p50_ms"], r["accuracy"]) for r in rows]
        front = sorted(pareto_front(pts), key=lambda i: pts[i][0])
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="grey", label="Pareto front")
        for r in rows:
            color = "#d62728" if r["variant"].startswith("edgetl") else "#1f77b4"
            ax.scatter(r["p50_ms"], r["accuracy"], s=20 + 8 * r["size_mb"], color=color, alpha=0.8)
            ax.annotate(r["variant"], (r["p50_ms"], r["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency, batch 1 (ms, log)")
        ax.set_ylabel(f"accuracy ({rows[0]['eval_samples']} eval examples)")
        ax.set_title(f"quickstart-{res['quickstart']} (marker area ~ file size)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(results: list[dict], created: str) -> str:
    env = results[0]["environment"]
    when = ", ".join(f"{r['quickstart']} {r.get('created', created)}" for r in results)
    threads = sorted({r["threads"] for r in results})
    lines = [f"Measured {when} on {env['cpu']} ({env['cpu_count']} CPUs; {', '.join(env['cpu_flags'])}), "
             f"{env['os']}, onnxruntime {env['libraries'].get('onnxruntime')}, torch {env['libraries'].get('torch')}; "
             f"machine fingerprint `{results[0]['machine_fingerprint']}`. Batch 1, {'/'.join(map(str, threads))} "
             "thread(s), all variants of a quickstart interleaved in one process; accuracy of each deployed file on "
             "the recipe's eval split.", "",
             "| quickstart | variant | what | accuracy | p50 ms | p90 ms | CPU ms p50 | size MB | speed-up vs torch (wall / CPU) | vs ORT FP32 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {r['quickstart']} | {r['variant']} | {r['what']} | {r['accuracy']:.4f} | {r['p50_ms']:.3f} | "
                         f"{r['p90_ms']:.3f} | {r['cpu_p50_ms']:.3f} | {r['size_mb']:.2f} | {r['speedup_vs_torch']:.2f}x / "
                         f"{r['cpu_speedup_vs_torch']:.2f}x | "
                         f"{r['speedup_vs_ort_fp32']:.2f}x |")
    lines += ["", "Wall p50 is the protocol's number; `CPU ms` is the process CPU time of the same iterations, which stays "
              "near the true compute time when other work preempts the benchmark (long runs such as eager PyTorch are "
              "preempted more often than sub-millisecond ones, so under contention wall-time ratios overstate the "
              "gap). Load average during the run: " + ", ".join(f"{r['quickstart']} {r.get('load')}" for r in results)
              + ".", "", "Optimum's ORT quantizer was not run: `optimum-onnx` pins transformers < 4.58 and does not install beside "
              "transformers 5.x; its static quantizer wraps the same ONNX Runtime `quantize_static` measured as `ort-ptq`."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(QUICKSTARTS), action="append")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calibration-samples", type=int, default=256)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "peers")
    args = ap.parse_args()
    from edgetl.log import setup_logging

    setup_logging(False)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results = []
    for n in args.only or ["vision", "text"]:
        res = compare(n, args.iterations, args.threads, args.calibration_samples)
        res["created"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        results.append(res)
    args.out.mkdir(parents=True, exist_ok=True)
    old = args.out / "peers.json"
    if args.only and old.exists():  # keep the other quickstart's last run (each is interleaved on its own)
        kept = [r for r in json.loads(old.read_text())["results"] if r["quickstart"] not in args.only]
        results = sorted(kept + results, key=lambda r: list(QUICKSTARTS).index(r["quickstart"]))
    (args.out / "peers.json").write_text(json.dumps({"created": created, "results": results}, indent=2, default=float))
    plot(results, args.out / "pareto.png")
    md = markdown(results, created)
    (args.out / "peers.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
