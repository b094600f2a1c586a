"""Compare fine-tuning methods on the quickstarts: same model, data, epochs and seed; only `method` changes.

    nice -n 10 .venv/bin/python benchmarks/finetune_methods.py --task vision
    nice -n 10 .venv/bin/python benchmarks/finetune_methods.py --task text --methods full lora linear_probe

Each method runs the quickstart recipe's `finetune` stage alone (through `edgetl compress`, so the numbers
are the ones a recipe gives) in a scratch folder that is deleted afterwards. Writes into --out:
`<task>.json` (every metric), `<task>.md` (table + verdict against the issue's criteria) and `<task>.png`
(accuracy vs trainable share, train time). Methods run one after another in one process: train times are
comparable within one run only (other load on the machine shifts them).
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
RECIPES = {"vision": ROOT / "recipes/quickstart-vision.yaml", "text": ROOT / "recipes/quickstart-text.yaml"}
METHODS = {
    "full": {"method": "full"},
    "lora": {"method": "lora"},
    "adapter": {"method": "adapter"},
    "linear_probe": {"method": "linear_probe"},
    "full_layerwise": {"method": "full", "lr_decay": 0.8},
}
log = logging.getLogger("finetune_methods")


def run_one(task: str, name: str, overrides: dict, args) -> dict:
    from edgetl.pipeline.runner import compress
    from edgetl.recipe.load import parse_recipe

    recipe = yaml.safe_load(RECIPES[task].read_text())
    stage = next(s for s in recipe["stages"] if s["type"] == "finetune")
    stage.update(overrides)
    if args.epochs:
        stage["epochs"] = args.epochs
    if args.train_limit:
        recipe["data"]["train_limit"] = args.train_limit
    if args.eval_limit:
        recipe["data"]["eval_limit"] = args.eval_limit
    recipe["stages"] = [stage]
    recipe["targets"] = {}
    recipe["name"] = f"{recipe['name']}-{name}"
    scratch = Path(tempfile.mkdtemp(prefix=f"ft-{task}-{name}-"))
    try:
        t0 = time.perf_counter()
        report = compress(parse_recipe(recipe), scratch)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    m = report["stages"][0]["metrics"]
    row = {"name": name, "config": stage, "wall_seconds": round(wall, 1)}
    for k in ("method", "best_eval_accuracy", "best_epoch", "eval_accuracy_before", "train_seconds", "steps",
              "trainable_params", "total_params", "trainable_percent", "merge_max_abs_diff", "adapters",
              "adapter_params", "cached_features", "history"):
        if k in m:
            row[k] = m[k]
    log.info("%s %s: accuracy %.4f, trainable %.3f %%, train %.1f s", task, name, row["best_eval_accuracy"],
             row["trainable_percent"], row["train_seconds"])
    return row


def verdict(rows: list[dict]) -> list[str]:
    by = {r["name"]: r for r in rows}
    lines = []
    if "full" in by and "lora" in by:
        ratio = by["lora"]["best_eval_accuracy"] / by["full"]["best_eval_accuracy"]
        ok = ratio >= 0.97 and by["lora"]["trainable_percent"] <= 5
        lines.append(f"- LoRA reaches {100 * ratio:.1f} % of full fine-tuning's accuracy while training "
                     f"{by['lora']['trainable_percent']:.2f} % of the parameters "
                     f"(criterion >= 97 % with <= 5 %): **{'met' if ok else 'not met'}**")
    if "linear_probe" in by:
        others = {k: v["best_eval_accuracy"] for k, v in by.items() if k in ("full", "lora")}
        if others:
            lp = by["linear_probe"]["best_eval_accuracy"]
            below = all(lp < v for v in others.values())
            lines.append(f"- linear probe {lp:.4f} vs " + ", ".join(f"{k} {v:.4f}" for k, v in others.items())
                         + f": {'below both' if below else 'NOT below both'}")
    return lines


def write(task: str, rows: list[dict], out: Path, argv: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"task": task, "recipe": str(RECIPES[task].relative_to(ROOT)), "args": argv, "host": platform.node(),
            "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}
    (out / f"{task}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# Fine-tuning methods: {task} quickstart", "",
             f"`{meta['recipe']}`, finetune stage only, overrides {argv}. Load average at the end: "
             f"{meta['load_average_at_end'][0]:.1f} on {meta['cpus']} CPUs (train times shift with other load).", "",
             "| method | best eval acc | best epoch | trainable params | trainable % | train s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['best_eval_accuracy']:.4f} | {r['best_epoch']} | {r['trainable_params']:,} "
                     f"| {r['trainable_percent']:.3f} | {r['train_seconds']:.1f} |")
    lines += ["", *verdict(rows), ""]
    (out / f"{task}.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for r in rows:
            a.scatter(max(r["trainable_percent"], 1e-3), r["best_eval_accuracy"], s=40)
            a.annotate(r["name"], (max(r["trainable_percent"], 1e-3), r["best_eval_accuracy"]), fontsize=8)
        a.set_xscale("log")
        a.set_xlabel("trainable parameters (%)")
        a.set_ylabel("best eval accuracy")
        b.bar([r["name"] for r in rows], [r["train_seconds"] for r in rows])
        b.set_ylabel("train seconds")
        b.tick_params(axis="x", rotation=30)
        fig.suptitle(f"fine-tuning methods, {task} quickstart")
        fig.tight_layout()
        fig.savefig(out / f"{task}.png", dpi=100)
    except ImportError:
        log.warning("matplotlib missing: no plot")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["vision", "text", "both"], default="vision")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/finetune_methods")
    p.add_argument("--epochs", type=float, default=None, help="override the quickstart's epochs (all methods)")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a loaded machine)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("torchao", "torch", "transformers", "edgetl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    argv = {k: v for k, v in vars(args).items() if k not in ("out", "task", "methods") and v is not None}
    for task in (["vision", "text"] if args.task == "both" else [args.task]):
        rows = []
        for name in args.methods:
            rows.append(run_one(task, name, METHODS[name], args))
            write(task, rows, args.out, argv)  # after every method, so a stopped run keeps what it measured
        for line in verdict(rows):
            log.info("%s", line)


if __name__ == "__main__":
    main()
