"""`edgetl search RECIPE`: the fastest model within the recipe's targets, found by an Optuna study over the knobs
of its `search:` block (edgetl/pipeline/search.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def search(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML with a `search:` block.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Study folder: trials/, store/, best/, search.db, "
                                             "search.json/.md/.png (default: runs/<recipe name>-search).",
                                             show_default=False)] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials in the study, all workers together "
                                               "(default: search.trials).", show_default=False)] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage: sqlite:///PATH (default: OUT/search.db), journal:PATH, or a "
        "postgresql:// / mysql:// URL for workers on several machines (which must share OUT).",
        show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Processes on this machine joining the "
                                         "study.")] = 1,
    rerun_best: Annotated[bool, typer.Option("--rerun-best/--no-rerun-best", help="Re-run the chosen trial without "
                                             "search.trial_set into OUT/best.")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe field (repeatable).",
                                                   show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Search the knobs of RECIPE's `search:` block for the fastest model that meets its targets."""
    from edgetl.commands.guard import run_guarded
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go() -> None:
        from edgetl.pipeline.search import search as run_search
        from edgetl.recipe.load import load_recipe

        folder = out or Path("runs") / f"{load_recipe(recipe, set_ or []).name}-search"
        summary = run_search(recipe, folder, trials=trials, storage=storage, workers=workers, sets=set_ or [],
                             rerun_best=rerun_best)
        counts = ", ".join(f"{n} {s.lower()}" for s, n in summary["counts"].items() if n)
        typer.echo(f"{folder}: {counts}; report {folder / 'search.md'}")
        chosen, best = summary["chosen"], summary.get("best")
        if chosen is None:
            typer.echo("no finished trial met the recipe's targets")
            raise typer.Exit(1)
        typer.echo(f"chosen: trial {chosen['number']} ({' '.join(chosen['sets'])}): p50 {chosen['p50_ms']:.3f} ms, "
                   f"accuracy {chosen.get('accuracy')}")
        if best:
            typer.echo(f"re-run at full size in {best['run']}: p50 {best['p50_ms']:.3f} ms, accuracy "
                       f"{best.get('accuracy')}, targets {'met' if best['targets_passed'] else 'missed'}")

    run_guarded(go)
