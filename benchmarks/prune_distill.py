"""Pruning and distillation, with and without KD, on both quickstarts (the issue's done-means).

    nice -n 10 .venv/bin/python benchmarks/prune_distill.py --part vision
    nice -n 10 .venv/bin/python benchmarks/prune_distill.py --part text [--train-limit 2000]

Vision: recipes/vision-prune-kd.yaml (MobileNetV2 / Fashion-MNIST 224 px, prune to <= 50 % MACs) with KD
recovery and the same recipe with plain recovery (`kd: null`). Text: recipes/text-distill.yaml (MiniLM-L6 ->
3-layer student) with KD and without (alpha 1: labels only), and 50 % head pruning with and without KD.
Variants share the fine-tuned teacher (its finished stage folders are copied, so the runner reuses them).
All ONNX files of a part are then timed interleaved in this one process (ORT CPU, batch 1, 2 threads);
accuracy is each file's own ONNX Runtime run on the eval split (from the runs' benchmark stages).
Writes results.json, results.md and accuracy_vs_latency.png under benchmarks/results/prune_distill/.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("prune_distill")


def run_variant(base: dict[str, Any], edit, run_dir: Path, share_from: Path | None, shared_stages: int) -> dict[str, Any]:
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe

    data = copy.deepcopy(base)
    edit(data)
    recipe = parse_recipe(data, ROOT / "recipes", source=data["name"])
    if share_from is not None:
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)
        for folder in sorted((share_from / "stages").iterdir()):
            if folder.name[:2].isdigit() and int(folder.name[:2]) < shared_stages:
                dest = run_dir / "stages" / folder.name
                if not dest.exists():
                    shutil.copytree(folder, dest)
    t0 = time.perf_counter()
    report = compress(recipe, run_dir, recipe_file=data["name"])
    report["_seconds"] = time.perf_counter() - t0
    return report


def stage_metrics(report: dict[str, Any], stage_type: str) -> dict[str, Any]:
    found = [s for s in report["stages"] if s["type"] == stage_type]
    return found[-1]["metrics"] if found else {}


def time_all(files: dict[str, Path], data_task: str, run_report: dict[str, Any], iterations: int) -> dict[str, Any]:
    """Interleaved ORT latency of every file, in this process (same fingerprint)."""
    from edgetl.backends.onnxruntime import session_inputs
    from edgetl.bench.fingerprint import device_fingerprint
    from edgetl.bench.protocol import summarize, time_interleaved
    from edgetl.data.datasets import load_data
    from edgetl.recipe.load import parse_recipe
    from edgetl.runtime.meta import read_onnx_meta
    from edgetl.runtime.ort import make_session
    from edgetl.runtime.preprocess import latency_feed

    recipe = parse_recipe(run_report["recipe"], ROOT / "recipes")
    data = load_data(recipe.data)
    runners = {}
    for name, path in files.items():
        meta = read_onnx_meta(path)
        session = make_session(path, threads=2)
        raw = data.eval.inputs[:1]
        feed = session_inputs(session, latency_feed(meta.encoder(), raw, data_task))
        runners[name] = (lambda s=session, f=feed: s.run(None, f))
    samples = time_interleaved(runners, iterations=iterations, warmup_seconds=0.5, seed=0)
    # supplementary: 1 thread (less exposed to other processes competing for the 2 cores)
    one = {}
    for name, path in files.items():
        session = make_session(path, threads=1)
        meta = read_onnx_meta(path)
        raw = data.eval.inputs[:1]
        feed = session_inputs(session, latency_feed(meta.encoder(), raw, data_task))
        one[name] = (lambda s=session, f=feed: s.run(None, f))
    samples1 = time_interleaved(one, iterations=max(50, iterations // 3), warmup_seconds=0.3, seed=1)
    return {"latency_ms": {n: summarize(v) for n, v in samples.items()},
            "latency_ms_1thread": {n: summarize(v) for n, v in samples1.items()},
            "fingerprint": device_fingerprint(2, "ort-cpu")}


def artifact(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in report["artifacts"] if a["name"] == name)


def collect(rows_spec, timing, base_name: str) -> list[dict[str, Any]]:
    rows = []
    lat = timing["latency_ms"]
    for label, report, art_name, extra in rows_spec:
        a = artifact(report, art_name)
        p50 = lat[label]["p50"]
        rows.append({"variant": label, "artifact": art_name, "accuracy": a["accuracy"], "macs": a.get("macs"),
                     "params": a.get("params"), "size_bytes": a["size_bytes"], "p50_ms": p50,
                     "p90_ms": lat[label]["p90"], "cov": lat[label]["cov"], "n": lat[label]["n"],
                     "p50_ms_1thread": timing["latency_ms_1thread"][label]["p50"], **extra})
    base = next(r for r in rows if r["variant"] == base_name)
    for r in rows:
        r["speedup"] = base["p50_ms"] / r["p50_ms"]
        r["speedup_1thread"] = base["p50_ms_1thread"] / r["p50_ms_1thread"]
        r["macs_ratio"] = r["macs"] / base["macs"] if r.get("macs") and base.get("macs") else None
        r["accuracy_delta"] = r["accuracy"] - base["accuracy"]
        r["accuracy_retained"] = r["accuracy"] / base["accuracy"]
    return rows


def base_recipe(name: str, args) -> dict[str, Any]:
    """recipes/NAME.yaml as a dict, with the command line's --train-limit / --eval-limit applied."""
    from edgetl.recipe.load import read_yaml

    base = read_yaml(ROOT / "recipes" / f"{name}.yaml")
    if args.train_limit:
        base["data"]["train_limit"] = args.train_limit
    if args.eval_limit:
        base["data"]["eval_limit"] = args.eval_limit
    return base


def vision(args, runs: Path) -> dict[str, Any]:
    base = base_recipe("vision-prune-kd", args)
    kd = run_variant(base, lambda d: None, runs / "vision-kd", None, 0)
    nokd = run_variant(base, lambda d: d["stages"][2].update(kd=None), runs / "vision-nokd", runs / "vision-kd", 2)
    files = {
        "baseline (unpruned)": runs / "vision-kd" / artifact(kd, "onnx_base")["path"],
        "pruned + KD recovery": runs / "vision-kd" / artifact(kd, "onnx_pruned")["path"],
        "pruned + plain recovery": runs / "vision-nokd" / artifact(nokd, "onnx_pruned")["path"],
    }
    timing = time_all(files, "image", {"recipe": base}, args.iterations)
    pk, pn = stage_metrics(kd, "prune"), stage_metrics(nokd, "prune")
    rows = collect([
        ("baseline (unpruned)", kd, "onnx_base", {}),
        ("pruned + KD recovery", kd, "onnx_pruned", {"accuracy_right_after_pruning": pk["after"]["accuracy_after_pruning"]}),
        ("pruned + plain recovery", nokd, "onnx_pruned", {"accuracy_right_after_pruning": pn["after"]["accuracy_after_pruning"]}),
    ], timing, "baseline (unpruned)")
    by = {r["variant"]: r for r in rows}
    k, n = by["pruned + KD recovery"], by["pruned + plain recovery"]
    checks = [
        {"check": "MobileNetV2 pruned MACs <= 50 %", "value": k["macs_ratio"], "passed": k["macs_ratio"] <= 0.5 + 1e-9},
        {"check": "KD-recovered accuracy within 1 point of unpruned", "value": k["accuracy_delta"],
         "passed": k["accuracy_delta"] >= -0.01},
        {"check": "pruned FP32 ONNX >= 1.6x faster", "value": k["speedup"], "passed": k["speedup"] >= 1.6},
        {"check": "KD recovery beats plain recovery (accuracy)", "value": k["accuracy"] - n["accuracy"],
         "passed": k["accuracy"] > n["accuracy"]},
    ]
    return {"rows": rows, "checks": checks, "timing_fingerprint": timing["fingerprint"],
            "prune_widths_changed": pk.get("widths_changed"), "prune_history": pk.get("history"),
            "recipe": base, "seconds": {"kd_run": kd["_seconds"], "nokd_run": nokd["_seconds"]}}


def text(args, runs: Path) -> dict[str, Any]:
    base = base_recipe("text-distill", args)
    distill_stage = copy.deepcopy(base["stages"][2])
    prune_stage = {"type": "prune", "name": "heads50", "target": {"ratio": 0.5}, "ffn": False, "heads": True,
                   "epochs": distill_stage.get("epochs", 1), "batch_size": 32, "lr": 5e-5,
                   "kd": {"temperature": 2, "alpha": 0.3}}

    def set_stage(stage):
        def edit(d):
            d["stages"][2] = stage
            if stage["type"] == "prune":
                d["stages"][3]["name"] = "onnx_student"
        return edit

    l3kd = run_variant(base, lambda d: None, runs / "text-l3-kd", None, 0)
    nokd_stage = {**distill_stage, "kd": {"alpha": 1.0}}
    l3 = run_variant(base, set_stage(nokd_stage), runs / "text-l3-nokd", runs / "text-l3-kd", 2)
    hkd = run_variant(base, set_stage(prune_stage), runs / "text-heads-kd", runs / "text-l3-kd", 2)
    hno = run_variant(base, set_stage({**prune_stage, "kd": None}), runs / "text-heads-nokd", runs / "text-l3-kd", 2)
    files = {
        "teacher (6 layers)": runs / "text-l3-kd" / artifact(l3kd, "onnx_teacher")["path"],
        "3-layer student + KD": runs / "text-l3-kd" / artifact(l3kd, "onnx_student")["path"],
        "3-layer student, no KD": runs / "text-l3-nokd" / artifact(l3, "onnx_student")["path"],
        "50 % heads + KD": runs / "text-heads-kd" / artifact(hkd, "onnx_student")["path"],
        "50 % heads, no KD": runs / "text-heads-nokd" / artifact(hno, "onnx_student")["path"],
    }
    timing = time_all(files, "text", {"recipe": base}, args.iterations)
    rows = collect([
        ("teacher (6 layers)", l3kd, "onnx_teacher", {}),
        ("3-layer student + KD", l3kd, "onnx_student", {}),
        ("3-layer student, no KD", l3, "onnx_student", {}),
        ("50 % heads + KD", hkd, "onnx_student", {}),
        ("50 % heads, no KD", hno, "onnx_student", {}),
    ], timing, "teacher (6 layers)")
    by = {r["variant"]: r for r in rows}
    checks = [
        {"check": "3-layer KD student keeps >= 97 % of teacher accuracy", "value": by["3-layer student + KD"]["accuracy_retained"],
         "passed": by["3-layer student + KD"]["accuracy_retained"] >= 0.97},
        {"check": "3-layer KD student >= 1.8x faster", "value": by["3-layer student + KD"]["speedup"],
         "passed": by["3-layer student + KD"]["speedup"] >= 1.8},
        {"check": "50 % heads + KD keeps >= 97 %", "value": by["50 % heads + KD"]["accuracy_retained"],
         "passed": by["50 % heads + KD"]["accuracy_retained"] >= 0.97},
        {"check": "KD beats no KD (3-layer student)",
         "value": by["3-layer student + KD"]["accuracy"] - by["3-layer student, no KD"]["accuracy"],
         "passed": by["3-layer student + KD"]["accuracy"] > by["3-layer student, no KD"]["accuracy"]},
        {"check": "KD beats no KD (50 % heads)",
         "value": by["50 % heads + KD"]["accuracy"] - by["50 % heads, no KD"]["accuracy"],
         "passed": by["50 % heads + KD"]["accuracy"] > by["50 % heads, no KD"]["accuracy"]},
    ]
    return {"rows": rows, "checks": checks, "timing_fingerprint": timing["fingerprint"], "recipe": base,
            "seconds": {"l3_kd": l3kd["_seconds"], "l3_nokd": l3["_seconds"], "heads_kd": hkd["_seconds"],
                        "heads_nokd": hno["_seconds"]}}


def text_latency(args, runs: Path) -> dict[str, Any]:
    """Speed only, no training (latency does not depend on the weights): MiniLM-L6 at max_length 64 vs its
    3-layer student (keep_layers [0, 2, 4]) and vs 50 % of heads pruned (FFN kept), and 50 % heads + FFN."""
    from edgetl.distill.students import drop_layers
    from edgetl.export.onnx import torch_to_onnx
    from edgetl.models.encoder import sync_hf_config
    from edgetl.models.macs import model_macs
    from edgetl.models.zoo import load_source
    from edgetl.prune.structured import StructuredPruner
    from edgetl.recipe.load import read_yaml
    from edgetl.runtime.meta import write_onnx_meta

    base = read_yaml(ROOT / "recipes" / "text-distill.yaml")
    from edgetl.recipe.schema import ModelConfig

    labels = ["negative", "positive"]
    teacher = load_source(ModelConfig(**base["model"]), "text", labels)
    variants = {"teacher (6 layers)": teacher, "3-layer student": drop_layers(teacher, [0, 2, 4])}
    for label, ffn in (("50 % heads", False), ("50 % heads + 50 % FFN", True)):
        m = load_source(ModelConfig(**base["model"]), "text", labels)
        StructuredPruner(m, pruning_ratio=0.5, ffn=ffn, round_to=8).step()
        m.files = sync_hf_config(m.module, m.files)
        variants[label] = m
    folder = runs / "text-latency"
    folder.mkdir(parents=True, exist_ok=True)
    files, macs = {}, {}
    for i, (label, m) in enumerate(variants.items()):
        path = folder / f"v{i}" / "model.onnx"
        path.parent.mkdir(exist_ok=True)
        torch_to_onnx(m, path, 17)
        for name, src in m.files.items():
            if name.startswith("tokenizer"):
                shutil.copyfile(src, path.parent / name)
        write_onnx_meta(path, labels=labels, preprocessing=m.preprocessing, task="text", info={})
        files[label] = path
        macs[label] = model_macs(m)
    report = {"recipe": {"data": base["data"], "model": base["model"]}}
    timing = time_all(files, "text", {"recipe": {**base}}, args.iterations)
    lat, lat1 = timing["latency_ms"], timing["latency_ms_1thread"]
    b, b1 = lat["teacher (6 layers)"]["p50"], lat1["teacher (6 layers)"]["p50"]
    rows = [{"variant": k, "macs": macs[k][0], "params": macs[k][1], "macs_ratio": macs[k][0] / macs["teacher (6 layers)"][0],
             "p50_ms": lat[k]["p50"], "cov": lat[k]["cov"], "speedup": b / lat[k]["p50"],
             "p50_ms_1thread": lat1[k]["p50"], "speedup_1thread": b1 / lat1[k]["p50"]} for k in files]
    s3 = next(r for r in rows if r["variant"] == "3-layer student")
    return {"rows": rows, "recipe": report["recipe"], "timing_fingerprint": timing["fingerprint"], "speed_only": True,
            "checks": [{"check": "3-layer student >= 1.8x faster (latency only, 2 threads)", "value": s3["speedup"],
                        "passed": s3["speedup"] >= 1.8}]}


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Pruning and distillation benchmark", "",
             "ONNX Runtime CPU, batch 1, 2 threads, all files of a part timed interleaved in one process; accuracy is "
             "each ONNX file run on the eval split. Command: `" + results["command"] + "`.", ""]
    for part, res in results["parts"].items():
        r0 = res["recipe"]
        if res.get("speed_only"):
            lines += [f"## {part} (speed only: untrained heads, no accuracy claimed)", "",
                      "| variant | MACs (M) | MACs ratio | params (M) | p50 ms | speed-up | CoV | p50 ms 1 thread | speed-up 1 thread |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in res["rows"]:
                lines.append(f"| {r['variant']} | {r['macs'] / 1e6:.1f} | {r['macs_ratio']:.3f} | {r['params'] / 1e6:.2f} | "
                             f"{r['p50_ms']:.3f} | {r['speedup']:.2f}x | {r['cov']:.1%} | {r['p50_ms_1thread']:.3f} | "
                             f"{r['speedup_1thread']:.2f}x |")
            lines += ["", "| check | value | result |", "|---|---|---|"]
            lines += [f"| {c['check']} | {c['value']:.4f} | {'pass' if c['passed'] else '**FAIL**'} |" for c in res["checks"]]
            lines.append("")
            continue
        lines += [f"## {part}", "", f"Model {r0['model']['source']}, data {r0['data']['name']} "
                  f"(train {r0['data'].get('train_limit')}, eval {r0['data'].get('eval_limit')}).", "",
                  "| variant | accuracy | Δ acc | retained | MACs (M) | MACs ratio | params (M) | p50 ms | speed-up | CoV "
                  "| p50 ms 1 thread | speed-up 1 thread |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["rows"]:
            lines.append(f"| {r['variant']} | {r['accuracy']:.4f} | {r['accuracy_delta']:+.4f} | {r['accuracy_retained']:.3f} | "
                         f"{(r['macs'] or 0) / 1e6:.1f} | {r['macs_ratio'] if r['macs_ratio'] is None else format(r['macs_ratio'], '.3f')} | "
                         f"{(r['params'] or 0) / 1e6:.2f} | {r['p50_ms']:.3f} | {r['speedup']:.2f}x | {r['cov']:.1%} | "
                         f"{r['p50_ms_1thread']:.3f} | {r['speedup_1thread']:.2f}x |")
        lines += ["", "| check | value | result |", "|---|---|---|"]
        for c in res["checks"]:
            lines.append(f"| {c['check']} | {c['value']:.4f} | {'pass' if c['passed'] else '**FAIL**'} |")
        n = r0["data"].get("eval_limit")
        if n:  # how big an accuracy difference one run can resolve: one standard error of an accuracy on n examples
            p = res["rows"][0]["accuracy"]
            lines += ["", f"One standard error of an accuracy on {n} eval examples is {(p * (1 - p) / n) ** 0.5:.4f}: "
                          "accuracy differences smaller than that (\"KD beats no KD\" included) are within noise."]
        lines.append("")
    lines.append("![accuracy vs latency](accuracy_vs_latency.png)")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(results["parts"].items())
    parts = [(k, v) for k, v in parts if not v.get("speed_only")] or parts
    fig, axes = plt.subplots(1, len(parts), figsize=(6 * len(parts), 4.5), squeeze=False)
    for ax, (part, res) in zip(axes[0], parts, strict=False):
        for r in res["rows"]:
            if r.get("accuracy") is None:
                continue
            ax.scatter(r["p50_ms"], r["accuracy"], s=50)
            ax.annotate(r["variant"], (r["p50_ms"], r["accuracy"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("p50 latency (ms), ORT CPU, batch 1, 2 threads")
        ax.set_ylabel("accuracy (ONNX, eval split)")
        ax.set_title(part)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["vision", "text", "text-latency", "all"], default="all")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "prune_distill", help="run folders (models)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prune_distill")
    parser.add_argument("--train-limit", type=int, default=None, help="override data.train_limit (CPU budget)")
    parser.add_argument("--eval-limit", type=int, default=None, help="override data.eval_limit")
    parser.add_argument("--iterations", type=int, default=300, help="timed iterations per ONNX file")
    args = parser.parse_args()
    from edgetl.log import setup_logging

    setup_logging(False)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {"parts": {}}
    results["command"] = "python benchmarks/prune_distill.py " + " ".join(sys.argv[1:])
    parts = ["vision", "text"] if args.part == "all" else [args.part]
    for part in parts:
        log.info("benchmark part %s", part)
        res = {"vision": vision, "text": text, "text-latency": text_latency}[part](args, args.runs)
        if results_file.exists():  # another part may have finished meanwhile: keep it
            results["parts"] = {**json.loads(results_file.read_text())["parts"], **results["parts"]}
        results["parts"][part] = res
        results_file.write_text(json.dumps(results, indent=2, default=str))
    (args.out / "results.md").write_text(markdown(results))
    plot(results, args.out / "accuracy_vs_latency.png")
    for part, res in results["parts"].items():
        for c in res["checks"]:
            print(f"{part}: {c['check']}: {c['value']:.4f} -> {'pass' if c['passed'] else 'FAIL'}")


if __name__ == "__main__":
    main()
