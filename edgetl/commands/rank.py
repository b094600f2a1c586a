"""`edgetl rank RECIPE --candidates a,b,c`: score pretrained candidates on the recipe's training data from
frozen features (LogME, LEEP, NCE, H-score) in minutes, instead of fine-tuning each; `--verify` fine-tunes
them all and reports how well each score predicted the accuracy reached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def rank(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML: its data (training split) and model settings.")],
    candidates: Annotated[str | None, typer.Option(
        "--candidates", "-c", help="Comma-separated sources to compare (zoo names, hf:<id>, model folders); "
        "default: the recipe's model.candidates.", show_default=False)] = None,
    by: Annotated[str | None, typer.Option("--by", help="Score that orders the table: logme, leep, nce, hscore, "
                                           "hscore_reg (default: the recipe's model.rank_by).",
                                           show_default=False)] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="Scores to compute, comma-separated (default: "
                                                "all).", show_default=False)] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=10, help="Training examples to score on "
                                                "(stratified; default: the recipe's model.rank_samples, 1000).",
                                                show_default=False)] = None,
    latency_iterations: Annotated[int, typer.Option("--latency-iterations", min=0,
                                                    help="Timed batch-1 runs per candidate (0: no latency).")] = 30,
    verify: Annotated[bool, typer.Option("--verify", help="Also fine-tune every candidate with the recipe's "
                                         "finetune stage and report each score's rank correlation with the "
                                         "accuracy reached (slow: one fine-tuning per candidate).")] = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch and numpy "
                                                "(default: torch's, one per core).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for rank.json / rank.md / rank.png "
                                             "(default: runs/<recipe name>-rank).", show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe field (repeatable).",
                                                   show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Rank candidate source models for RECIPE's data by transferability scores on frozen features."""
    from edgetl.commands.guard import run_guarded
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go():
        from edgetl.data.datasets import TASKS, load_data
        from edgetl.errors import RecipeError
        from edgetl.models.zoo import model_problems
        from edgetl.pipeline.select import candidate_config, finetune_candidates, order, rank_candidates
        from edgetl.pipeline.select import verify as check
        from edgetl.recipe.load import load_recipe
        from edgetl.runtime.files import write_json_atomic
        from edgetl.transfer.rank import METRICS
        from edgetl.transfer.report import ranking_lines, ranking_plot

        if threads:
            import torch

            torch.set_num_threads(threads)
        r = load_recipe(recipe, set_ or [])
        names = _names(candidates) or list(r.model.candidates or [])
        if len(names) < 2 or len(set(names)) != len(names):
            raise RecipeError(f"--candidates {','.join(names) or '(none)'}: expected at least two different models",
                              hint="e.g. --candidates mobilenet_v2,efficientnet_lite0,efficientnet_lite1")
        chosen_metrics = _names(metrics) or list(METRICS)
        order_by = by or r.model.rank_by
        if any(m not in METRICS for m in chosen_metrics) or order_by not in chosen_metrics:
            raise RecipeError(f"--metrics {','.join(chosen_metrics)} --by {order_by}: expected names from "
                              f"{', '.join(METRICS)}, with --by among --metrics")
        problems = [p.replace("model.source:", f"--candidates {c}:", 1) for c in names
                    for p in model_problems(candidate_config(r.model, c), TASKS[r.data.name])]
        if problems:
            raise RecipeError(f"{len(problems)} problem(s) with the candidates", problems=problems)
        folder = out or Path("runs") / f"{r.name}-rank"
        folder.mkdir(parents=True, exist_ok=True)
        result = rank_candidates(r.model, load_data(r.data), names, metrics=chosen_metrics,
                                 samples=samples or r.model.rank_samples, seed=r.data.split_seed,
                                 latency_iterations=latency_iterations)
        result = {"recipe": str(recipe), **order(result, order_by)}
        if verify:
            result["verify"] = check(result, finetune_candidates(r, names, folder))
        write_json_atomic(folder / "rank.json", result)
        plot = ranking_plot(result, folder / "rank.png")
        lines = ranking_lines(result)
        picture = ["", f"![scores]({plot.name})"] if plot else []
        (folder / "rank.md").write_text("\n".join([f"# Candidate ranking: {r.name}", "", *lines, *picture]) + "\n")
        typer.echo("\n".join(lines))
        typer.echo(f"best by {order_by}: {result['ranking']['chosen']}  |  {folder / 'rank.md'}  |  "
                   f"{folder / 'rank.json'}")

    run_guarded(go)
