"""Every vision zoo model through the same default recipe (recipes/vision-zoo.yaml, 224 px), one table.

    nice -n 10 .venv/bin/python benchmarks/zoo_models.py [--models mobilenet_v2,efficientnet_lite0] [--train-limit N]

For each model: MACs counted on the PyTorch model vs measured on its exported ONNX file, fine-tuned accuracy,
accuracy right after pruning to half the MACs and after the default recovery, PTQ and QAT INT8 accuracies
(ONNX Runtime on the eval split), FP32 and INT8 speed-ups over the unpruned FP32 ONNX (ORT CPU, batch 1,
2 threads, the recipe's interleaved benchmark stage), and whether every parity gate passed on the first run
(a gate that fails stops the run, so a finished run is a pass). Writes results.json and results.md under
benchmarks/results/zoo/, plus each run's report.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "zoo"
MODELS = ["mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def onnx_macs_of(run_dir: Path, art: dict[str, Any], size: int) -> int | None:
    import numpy as np

    from edgetl.bench.model_stats import onnx_macs

    feed = {"pixel_values": np.zeros((1, 3, size, size), np.float32)}
    return onnx_macs(run_dir / art["path"], feed)


def run_model(name: str, train_limit: int | None, runs: Path) -> dict[str, Any]:
    from edgetl.errors import EdgetlError
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import load_recipe

    sets = [f"model.source={name}"] + ([f"data.train_limit={train_limit}"] if train_limit else [])
    recipe = load_recipe(ROOT / "recipes" / "vision-zoo.yaml", sets)
    run_dir = runs / name
    t0 = time.perf_counter()
    try:
        report = compress(recipe, run_dir, recipe_file="recipes/vision-zoo.yaml")
    except EdgetlError as exc:
        return {"model": name, "error": exc.render(), "seconds": round(time.perf_counter() - t0)}
    (OUT / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "report.json", OUT / name / "report.json")
    arts = {a["name"]: a for a in report["artifacts"]}
    stages = {s["type"] + str(i): s["metrics"] for i, s in enumerate(report["stages"])}
    prune = next(m for k, m in stages.items() if k.startswith("prune"))
    size = recipe.model.input_size
    base_lat = arts["onnx_base"]["latency_ms"]["p50"]

    def speedup(n: str) -> float | None:
        lat = (arts.get(n) or {}).get("latency_ms")
        return round(base_lat / lat["p50"], 2) if lat else None

    int8 = {a["name"]: a for a in report["artifacts"] if a["precision"] == "int8"}
    return {
        "model": name, "seconds": round(time.perf_counter() - t0),
        "macs_torch": arts["finetuned"].get("macs"), "macs_onnx": onnx_macs_of(run_dir, arts["onnx_base"], size),
        "macs_pruned_torch": arts["pruned"].get("macs"),
        "macs_pruned_onnx": onnx_macs_of(run_dir, arts["onnx_pruned"], size),
        "protected_layers": len(prune.get("protected_layers") or {}),
        "accuracy_finetuned": arts["onnx_base"]["accuracy"],
        "accuracy_after_pruning": prune["after"]["accuracy_after_pruning"],
        "accuracy_pruned": arts["onnx_pruned"]["accuracy"],
        "int8": {n: {"accuracy": a["accuracy"], "method": a.get("method"), "layout": a.get("layout"),
                     "speedup": speedup(n)} for n, a in int8.items()},
        "speedup_pruned_fp32": speedup("onnx_pruned"),
        "gates_first_try": True,
    }


def retime(rows: dict[str, dict[str, Any]], runs: Path, iterations: int) -> dict[str, Any]:
    """Every model's FP32, pruned FP32 and INT8 (onnxruntime layout) files timed again, all interleaved in one
    process: the speed-ups of one measurement, on a machine state that every file shared (each run's own benchmark
    stage ran at another time, beside other work)."""
    from edgetl.bench.api import benchmark

    files = {}
    for name in rows:
        report = runs / name / "report.json"
        if not report.exists() or "error" in rows[name]:
            continue
        for a in json.loads(report.read_text())["artifacts"]:
            if a["format"] == "onnx" and a.get("layout") != "tensorrt":
                files[f"{name}/{a['name']}"] = runs / name / a["path"]
    res = benchmark(files, None, {"iterations": iterations, "threads": 2}, seed=0).metrics
    p50 = {k: v["latency_ms"]["p50"] for k, v in res["results"].items()}
    for name, row in rows.items():
        base = p50.get(f"{name}/onnx_base")
        if base:
            row["side_by_side"] = {k.split("/", 1)[1]: round(base / v, 2) for k, v in p50.items()
                                   if k.startswith(f"{name}/") and not k.endswith("/onnx_base")}
    return {"iterations": iterations, "files": len(files), "p50_ms": p50, "load": res.get("load"),
            "machine_fingerprint": res.get("machine_fingerprint")}


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | MACs torch / ONNX (M) | pruned MACs torch / ONNX (M) | fine-tuned | pruned (before -> after "
            "recovery) | PTQ INT8 ort / trt | QAT INT8 ort / trt | FP32 pruned speed-up | INT8 speed-up (best) | "
            "gates | side by side: pruned FP32 / PTQ / QAT INT8 |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | stopped: {r['error'].splitlines()[0][:160]} |||||||||")
            continue
        q = {(v["method"], v["layout"]): v for v in r["int8"].values()}

        def acc(method: str, layout: str, q=q) -> str:
            v = q.get((method, layout))
            return "-" if v is None or v["accuracy"] is None else f"{v['accuracy']:.3f}"

        best = max((v["speedup"] or 0 for v in r["int8"].values() if v["layout"] == "onnxruntime"), default=0)
        lines.append(
            f"| {r['model']} | {r['macs_torch'] / 1e6:.1f} / {r['macs_onnx'] / 1e6:.1f} | "
            f"{r['macs_pruned_torch'] / 1e6:.1f} / {r['macs_pruned_onnx'] / 1e6:.1f} | {r['accuracy_finetuned']:.3f} | "
            f"{r['accuracy_after_pruning']:.3f} -> {r['accuracy_pruned']:.3f} | {acc('ptq', 'onnxruntime')} / "
            f"{acc('ptq', 'tensorrt')} | {acc('qat', 'onnxruntime')} / {acc('qat', 'tensorrt')} | "
            f"{r['speedup_pruned_fp32']}x | {best}x | {'pass' if r['gates_first_try'] else 'FAIL'} | {side(r)} |")
    return "\n".join(lines)


def side(r: dict[str, Any]) -> str:
    sb = r.get("side_by_side")
    if not sb:
        return "-"
    q = {(v["method"], v["layout"]): n for n, v in r["int8"].items()}
    return " / ".join(f"{sb[n]}x" if n in sb else "-" for n in
                      ("onnx_pruned", q.get(("ptq", "onnxruntime")), q.get(("qat", "onnxruntime"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo")
    parser.add_argument("--retime", action="store_true", help="run nothing; time every finished model's files "
                        "again, all interleaved in one process, and add those speed-ups to the table")
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    from edgetl.bench.fingerprint import environment
    from edgetl.log import setup_logging

    setup_logging(False)
    OUT.mkdir(parents=True, exist_ok=True)
    previous = json.loads((OUT / "results.json").read_text()) if (OUT / "results.json").exists() else {}
    rows = {r["model"]: r for r in previous.get("rows", [])}
    retimed = previous.get("side_by_side")
    if args.retime:
        retimed = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "environment": environment(), **retime(rows, args.runs, args.iterations)}
    for name in [] if args.retime else args.models.split(","):
        rows[name] = run_model(name, args.train_limit, args.runs)
        rows[name].pop("side_by_side", None)
        print(json.dumps(rows[name], indent=1), flush=True)
        write(rows, args.train_limit, retimed)
    if args.retime:
        write(rows, previous.get("train_limit"), retimed)


def write(rows: dict[str, dict[str, Any]], train_limit: int | None, retimed: dict[str, Any] | None) -> None:
    from edgetl.bench.fingerprint import environment

    result = {"date": dt.date.today().isoformat(), "environment": environment(), "recipe": "recipes/vision-zoo.yaml",
              "train_limit": train_limit, "rows": [rows[m] for m in MODELS if m in rows], "side_by_side": retimed}
    (OUT / "results.json").write_text(json.dumps(result, indent=1, default=str))
    note = (f" The last column: every model's files timed again, all interleaved in one process ({retimed['date']}, "
            f"{retimed['iterations']} iterations each, load average {retimed['load']}): the ratios "
            "to compare across models." if retimed else "")
    (OUT / "results.md").write_text(
        f"# Every vision zoo model, one default recipe ({result['date']})\n\n"
        "recipes/vision-zoo.yaml at 224 px on Fashion-MNIST; ORT CPU batch 1, 2 threads; speed-ups over the "
        "unpruned FP32 ONNX, interleaved in each run's benchmark stage (each run at its own time, some beside "
        "other work)." + note + " Environment in results.json.\n\n" + table(result["rows"]) + "\n")


if __name__ == "__main__":
    main()
