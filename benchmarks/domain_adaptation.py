"""Unsupervised domain adaptation on real acquisition shifts: every `adapt:` method against source-only.

    nice -n 10 .venv/bin/python benchmarks/domain_adaptation.py
    nice -n 10 .venv/bin/python benchmarks/domain_adaptation.py --pairs mnist-digits --methods adabn coral

Pairs (labelled source -> unlabelled target, the target's labels used only for evaluation on its eval split):
- `mnist-digits`: MNIST scans (mnist_5k, 28x28) -> scikit-learn's UCI digits (8x8, 17 grey levels);
- `digits-mnist`: the same two acquisitions the other way round.

Each (pair, method) runs recipes/vision-adapt.yaml through `edgetl compress` (finetune with adapt -> export ->
INT8 PTQ calibrated on target images -> benchmark on the target's eval split), so the numbers are the ones a recipe
gives. The first method of a pair also trains the source-only copy (same seed and settings, hence the same model
for every method). Writes --out/results.json (every metric; finished cells are kept, so a rerun only runs what is
missing unless --fresh) and --out/results.md. Runs go to scratch folders that are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes/vision-adapt.yaml"
PAIRS = {
    "mnist-digits": ({"name": "mnist_5k", "train_limit": 2000, "eval_limit": 500},
                     {"name": "digits", "eval_fraction": 0.3}),
    "digits-mnist": ({"name": "digits", "eval_fraction": 0.2},
                     {"name": "mnist_5k", "train_limit": 2000, "eval_limit": 500}),
}
METHODS = ["adabn", "coral", "mmd", "dann"]
log = logging.getLogger("domain_adaptation")


def run_one(pair: str, method: str, source_only: bool, args) -> dict:
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe

    recipe = yaml.safe_load(RECIPE.read_text())
    data, target = PAIRS[pair]
    recipe["data"] = dict(data)
    recipe["name"] = f"adapt-{pair}-{method}"
    ft = recipe["stages"][0]
    ft["adapt"] = {"method": method, "target": dict(target)}
    if method != "adabn":
        ft["adapt"]["source_only"] = source_only
    if args.epochs:
        ft["epochs"] = args.epochs
    bench = next(s for s in recipe["stages"] if s["type"] == "benchmark")
    bench["iterations"] = args.iterations
    scratch = Path(tempfile.mkdtemp(prefix=f"adapt-{pair}-{method}-"))
    try:
        t0 = time.perf_counter()
        report = compress(parse_recipe(recipe), scratch)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    stages = {s["type"]: s for s in report["stages"]}
    facts = stages["finetune"]["metrics"]["adapt"]
    onnx = {a["precision"]: a for a in report["artifacts"] if a["format"] == "onnx"}
    return {
        "pair": pair, "method": method, "adapt": facts,
        "fp32_onnx_target_accuracy": onnx["fp32"]["accuracy"], "int8_target_accuracy": onnx["int8"]["accuracy"],
        "int8_accuracy_source": onnx["int8"]["accuracy_source"],
        "fp32_p50_ms": (onnx["fp32"].get("latency_ms") or {}).get("p50"),
        "int8_p50_ms": (onnx["int8"].get("latency_ms") or {}).get("p50"),
        "finetune_seconds": stages["finetune"]["seconds"], "wall_seconds": round(wall, 1),
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def render(results: dict, meta: dict) -> str:
    lines = ["# Unsupervised domain adaptation: source-only vs each `adapt:` method", "",
             f"`benchmarks/domain_adaptation.py` on {meta['machine']}, torch {meta['torch']}, {meta['date']}. "
             "MobileNetV2 (ImageNet weights) at 64 px, recipes/vision-adapt.yaml: 1 epoch, batch 64, AdamW 1e-3, "
             "seed 0; INT8 = ONNX Runtime static PTQ (per channel) calibrated on target images as the recipe says "
             f"({meta.get('calibration', 'see the recipe')}). Accuracies in %, target "
             "accuracy on the target's labelled eval split (its labels are used for nothing else), source accuracy "
             "on the source's eval split. One run each: train times are comparable within a pair only (the machine "
             "is shared).", ""]
    for pair in PAIRS:
        rows = [r for k, r in results.items() if r["pair"] == pair]
        if not rows:
            continue
        base = next((r["adapt"]["source_only"] for r in rows if r["adapt"].get("source_only")), {})
        first = rows[0]["adapt"]
        lines += [f"## {pair}: {first['target']} as target ({first['target_inputs']} unlabelled images, "
                  f"{first['target_eval_examples']} labelled eval)", "",
                  "| method | target acc | gain (points) | INT8 target acc | INT8 - FP32 | source acc | "
                  "adapt train s | run s |", "|---|---|---|---|---|---|---|---|",
                  f"| source-only | {_pct(base.get('target_accuracy'))} | | | | {_pct(base.get('source_accuracy'))} | "
                  f"{base.get('train_seconds', '-')} | |"]
        for r in sorted(rows, key=lambda r: METHODS.index(r["method"])):
            a = r["adapt"]
            gain = a["target_accuracy"] - base["target_accuracy"] if base.get("target_accuracy") is not None else None
            drop = r["int8_target_accuracy"] - r["fp32_onnx_target_accuracy"]
            seconds = a.get("train_seconds", a.get("adapt_seconds"))
            lines.append(f"| {r['method']} | {_pct(a['target_accuracy'])} | {'-' if gain is None else f'{100 * gain:+.1f}'} | "
                         f"{_pct(r['int8_target_accuracy'])} | {100 * drop:+.1f} | {_pct(a['source_accuracy'])} | "
                         f"{seconds} | {r['wall_seconds']} |")
        best = max(rows, key=lambda r: r["adapt"]["target_accuracy"])
        int8_gain = best["int8_target_accuracy"] - base.get("target_accuracy", float("nan"))
        best_gain = best["adapt"]["target_accuracy"] - base.get("target_accuracy", float("nan"))
        lines += ["", f"Best: **{best['method']}**, {100 * best_gain:+.1f} points "
                      f"on the target (FP32 torch); its INT8 model {100 * int8_gain:+.1f} points over source-only "
                      f"(INT8 vs its FP32 ONNX: "
                      f"{100 * (best['int8_target_accuracy'] - best['fp32_onnx_target_accuracy']):+.1f}). adabn's "
                      "'adapt train s' is the BatchNorm pass alone (it adds no training).", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs")
    ap.add_argument("--iterations", type=int, default=100, help="latency iterations per ONNX file")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/adapt")
    ap.add_argument("--fresh", action="store_true", help="rerun cells already in results.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    saved = json.loads(path.read_text()) if path.exists() and not args.fresh else {}
    results = saved.get("results", {})
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), **saved.get("meta", {})}
    quant = next(st for st in yaml.safe_load(RECIPE.read_text())["stages"] if st["type"] == "quantize")
    meta.setdefault("calibration", f"{quant.get('calibration', 'minmax')} {quant.get('percentile', '')}, "
                                   f"{quant.get('samples', 256)} images".replace(" ,", ","))
    for pair in args.pairs:
        for method in args.methods:
            key = f"{pair}/{method}"
            if key in results:
                continue
            # source-only is the same model for every method (same seed, data and settings; adabn's is the model
            # before its BatchNorm pass): trained once per pair
            has_base = any(r["pair"] == pair and r["adapt"].get("source_only") for r in results.values())
            log.info("running %s", key)
            results[key] = run_one(pair, method, source_only=not has_base, args=args)
            path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
            (args.out / "results.md").write_text(render(results, meta))
    (args.out / "results.md").write_text(render(results, meta))
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
