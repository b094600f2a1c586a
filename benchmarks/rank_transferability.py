"""Does a transferability score pick the backbone fine-tuning would pick, at a fraction of its cost?

    nice -n 10 .venv/bin/python benchmarks/rank_transferability.py

For each labelled set, the four vision zoo models are scored from frozen features (`edgetl rank`'s code:
LogME, LEEP, NCE, H-score, shrinkage H-score) on stratified samples of the training split, then each is
fine-tuned with the default `finetune` stage (through `edgetl compress`, so the accuracies are the ones a recipe
gives) and every score's Kendall tau / Spearman against the accuracy reached is computed. Fine-tuned runs are
kept under --work and reused by a rerun (their recorded seconds then come from the first run). Writes into --out:
`<dataset>.json` (everything), `<dataset>.png` (score vs accuracy) and `results.md` (tables + verdict).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = ["mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
log = logging.getLogger("rank_transferability")
NOTES = "## Reading"  # a hand-written section from this heading on survives regeneration


def recipe_for(dataset: str, args) -> dict:
    return {
        "name": f"rank-{dataset}", "seed": 0,
        "model": {"source": CANDIDATES[0], "input_size": args.size},
        "data": {"name": dataset, "train_limit": args.train_limit, "eval_limit": args.eval_limit},
        "stages": [{"type": "finetune"}],  # the defaults: full, 1 epoch, batch 32, AdamW 1e-3, cosine
    }


def run_dataset(dataset: str, args) -> dict:
    from edgetl.data.datasets import load_data
    from edgetl.pipeline.select import finetune_candidates, order, rank_candidates, verify
    from edgetl.recipe.load import parse_recipe

    recipe = parse_recipe(recipe_for(dataset, args))
    data = load_data(recipe.data)
    rankings = {}
    latency = None
    for i, n in enumerate(args.samples):
        result = rank_candidates(recipe.model, data, CANDIDATES, samples=n, seed=0,
                                 latency_iterations=args.latency_iterations if i == 0 else 0)
        if latency is None:
            latency = {c["name"]: c["latency_ms"] for c in result["candidates"]}
        for c in result["candidates"]:
            c["latency_ms"] = latency[c["name"]]
        rankings[n] = order(result, "logme")
    started = time.perf_counter()
    finetuned = finetune_candidates(recipe, CANDIDATES, args.work / dataset)
    log.info("%s: fine-tuning done in %.0f s (cached runs count their recorded seconds)", dataset,
             time.perf_counter() - started)
    for r in rankings.values():
        r["verify"] = verify(r, finetuned)
    return {"dataset": dataset, "recipe": recipe_for(dataset, args), "train": len(data.train),
            "eval": len(data.eval), "finetuned": finetuned, "rankings": {str(n): r for n, r in rankings.items()}}


def rebuilt(path: Path, args) -> dict:
    """A saved result with its agreement recomputed by the current code (nothing is measured again)."""
    from edgetl.pipeline.select import verify
    from edgetl.transfer.rank import hscore_saturated

    res = json.loads(path.read_text())
    for r in res["rankings"].values():
        for c in r["candidates"]:  # results written before the plain H-score was skipped where it saturates
            if "hscore" in c["scores"] and (why := hscore_saturated(c["samples"], c["feature_dim"])):
                del c["scores"]["hscore"]
                c["skipped"]["hscore"] = why
        r["verify"] = verify(r, res["finetuned"])
    return res


def summary(results: list[dict], args) -> str:
    from edgetl.transfer.rank import METRIC_TITLES
    from edgetl.transfer.report import ranking_lines

    main = str(args.samples[-1])
    measured = [f"{r['dataset']} {r['load_average']['before']:.1f}-{r['load_average']['after']:.1f}"
                for r in results if "load_average" in r]
    loads = "1-minute load average " + ", ".join(measured) if measured else "load not recorded"
    lines = ["# Transferability ranking vs fine-tuning", "",
             f"Candidates: {', '.join(CANDIDATES)} (ImageNet weights). Input {args.size} px; fine-tuning: the default "
             f"`finetune` stage (full, 1 epoch, batch 32, AdamW 1e-3, cosine) on {args.train_limit} training images, "
             f"accuracy on {args.eval_limit} held-out images (digits: its stratified 20 % split, fewer). Scores on "
             f"stratified samples of {' and '.join(map(str, args.samples))} training images (frozen features, the "
             f"input of each model's classifier). torch and BLAS threads: {args.threads}; {os.cpu_count()} cores of "
             f"{platform.machine()}, shared with other work ({loads}): compare times within one run.", "",
             "Cost share = ranking (load, features, all five scores; latency timing excluded) / fine-tuning all four "
             "candidates (the stage's seconds: evaluation before training, one epoch, evaluation after).", "",
             "## Agreement with fine-tuned accuracy", "",
             "| dataset | samples | score | Kendall tau | Spearman | top pick | best model | pick is best | points behind | cost share |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    verdict_cost, verdict_logme = [], []
    for res in results:
        for n, r in res["rankings"].items():
            v = r["verify"]
            share = v["cost_share"]
            verdict_cost.append((res["dataset"], n, share))
            for m, a in v["agreement"].items():
                lines.append(f"| {res['dataset']} | {n} | {METRIC_TITLES[m]} | {a['kendall_tau']:.2f} | "
                             f"{a['spearman']:.2f} | {a['top_pick']} | {a['best_model']} | "
                             f"{'yes' if a['top_pick_is_best'] else 'no'} | {a['top_pick_gap_points']:.1f} | "
                             f"{100 * share:.1f} % |")
                if m == "logme":
                    verdict_logme.append((res["dataset"], n, a["top_pick_gap_points"]))
    lines += ["", "## Verdict", ""]
    for dataset, n, share in verdict_cost:
        lines.append(f"- {dataset}, {n} samples: ranking costs {100 * share:.1f} % of fine-tuning all candidates "
                     f"({'within' if share < 0.10 else 'over'} the 10 % target)")
    for dataset, n, gap in verdict_logme:
        lines.append(f"- {dataset}, {n} samples: LogME's top pick is {gap:.1f} points behind the best model "
                     f"({'within' if gap <= 1.0 else 'over'} the 1-point target)")
    for res in results:
        r = res["rankings"][main]
        best = max(res["finetuned"].values(), key=lambda v: v["accuracy"])["accuracy"]
        se = 100 * (best * (1 - best) / res["eval"]) ** 0.5
        lines += ["", f"## {res['dataset']} ({res['train']} train / {res['eval']} eval images, scores on {main})",
                  "", f"One accuracy on {res['eval']} eval images has a standard error of about {se:.1f} points "
                  f"(binomial, at {best:.3f}); the difference of two about {se * 2 ** 0.5:.1f}. Fine-tuned once, "
                  "seed 0.", "", *ranking_lines(r), "", f"![{res['dataset']}]({res['dataset']}.png)"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="fashion_mnist,mnist_5k,digits")
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--train-limit", type=int, default=1000)
    p.add_argument("--eval-limit", type=int, default=500)
    p.add_argument("--samples", default="250,500", help="comma-separated sample sizes to score on")
    p.add_argument("--latency-iterations", type=int, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a machine shared with other work)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-rank")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rank")
    p.add_argument("--from-json", action="store_true", help="only rebuild results.md and the plots from the "
                   "<dataset>.json files in --out (agreement recomputed, nothing measured again)")
    args = p.parse_args()
    args.samples = [int(s) for s in args.samples.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from edgetl.transfer.report import ranking_plot

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    previous = (args.out / "results.md").read_text() if (args.out / "results.md").exists() else ""
    notes = "\n" + previous[previous.index(NOTES):] if NOTES in previous else ""  # hand-written, kept
    for dataset in args.datasets.split(","):
        if args.from_json:
            res = rebuilt(args.out / f"{dataset}.json", args)
        else:
            before = os.getloadavg()[0]
            res = run_dataset(dataset, args)
            res["load_average"] = {"before": before, "after": os.getloadavg()[0]}
        (args.out / f"{dataset}.json").write_text(json.dumps(res, indent=2, default=str))
        ranking_plot(res["rankings"][str(args.samples[-1])], args.out / f"{dataset}.png")
        results.append(res)
        (args.out / "results.md").write_text(summary(results, args) + notes)
    log.info("wrote %s", args.out / "results.md")


if __name__ == "__main__":
    main()
