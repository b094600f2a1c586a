"""The `edgetl` command: a thin Typer layer over plain functions. An EdgetlError prints one clear message and
exits with its code (2: bad input, 3: a stage failed); anything else is a bug and keeps its traceback.
`compress` exits 1 when the run finished but a recipe target failed (README.md: "Exit codes")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edgetl.commands.guard import err_console, run_guarded

app = typer.Typer(
    name="edgetl",
    help="Fine-tune, prune, distill, quantize, export and benchmark models for edge devices, from one recipe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file, e.g. recipes/quickstart-vision.yaml.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe field: --set stages.0.epochs=2 (repeatable).", show_default=False),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
TARGETS_FAILED = 1  # exit code of a finished run whose report has a failed target


@app.command()
def compress(
    recipe: RecipeArg,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: runs/<recipe name>).")] = None,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    fail_on_targets: Annotated[bool, typer.Option(
        "--fail-on-targets/--no-fail-on-targets",
        help="Exit 1 when a recipe target (accuracy, latency, size budget) fails; --no-fail-on-targets exits 0.",
    )] = True,
) -> None:
    """Run every stage of RECIPE; finished stages are reused, changed ones rerun with what follows.
    Exit codes: 0 ok, 1 a target failed, 2 bad input, 3 a stage failed."""
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go():
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from edgetl.pipeline.runner import compress as run_compress
        from edgetl.recipe.load import load_recipe

        r = load_recipe(recipe, set_ or [])
        out_dir = out or Path("runs") / r.name
        if quiet:
            report = run_compress(r, out_dir, recipe_file=str(recipe))
        else:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TimeElapsedColumn())
            with Progress(*columns, transient=True) as progress:
                report = run_compress(r, out_dir, recipe_file=str(recipe), progress=progress)
        print_summary(report, out_dir)
        if report.get("targets_passed") is False:
            err_console().print("[bold red]one or more targets failed[/] (see report.md)")
            return TARGETS_FAILED if fail_on_targets else 0
        return 0

    code = run_guarded(go)
    if code:
        raise typer.Exit(code)


def print_summary(report: dict[str, Any], out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['name']}  (baseline: {report['baseline']}, final: {report['final']})")
    for col in ("artifact", "format", "precision", "size MB", "accuracy", "p50 ms", "p90 ms", "speed-up"):
        table.add_column(col, justify="left" if col in ("artifact", "format", "precision") else "right")
    for a in report["artifacts"]:
        lat = a.get("latency_ms") or {}
        table.add_row(
            a["name"], a["format"], a["precision"], f"{a['size_bytes'] / 1e6:.2f}",
            "-" if a.get("accuracy") is None else f"{a['accuracy']:.4f}",
            "-" if not lat else f"{lat['p50']:.3f}", "-" if not lat else f"{lat['p90']:.3f}",
            "-" if a.get("speedup_vs_baseline") is None else f"{a['speedup_vs_baseline']:.2f}x",
        )
    console = Console()
    console.print(table)
    for t in report.get("targets") or []:
        status = "n/a" if t["passed"] is None else ("pass" if t["passed"] else "FAIL")
        console.print(f"target {t['target']} <= {t['limit']}: {status} (value {t['value']})" if "max" in t["target"]
                      else f"target {t['target']} >= {t['limit']}: {status} (value {t['value']})")
    console.print(f"report: {out_dir / 'report.md'}  |  {out_dir / 'report.json'}  |  manifest: {out_dir / 'manifest.json'}")


@app.command()
def validate(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Check RECIPE without training: schema, stage order, files, installed extras and assets."""
    from edgetl.log import setup_logging

    setup_logging()  # checking LoRA targets imports peft -> torchao, whose CPU-only warnings read like failures

    def go():
        from edgetl.pipeline.runner import validate as check
        from edgetl.recipe.load import load_recipe

        r = load_recipe(recipe, set_ or [])
        check(r, str(recipe))
        typer.echo(f"{recipe}: ok ({len(r.stages)} stages: {' -> '.join(s.type for s in r.stages)})")

    run_guarded(go)


@app.command()
def schema(out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None) -> None:
    """Print the recipe's JSON schema (every field with its description)."""

    def go():
        from edgetl.recipe.load import recipe_json_schema

        text = json.dumps(recipe_json_schema(), indent=2)
        if out:
            out.write_text(text + "\n")
            typer.echo(f"wrote {out}")
        else:
            typer.echo(text)

    run_guarded(go)


@app.command()
def zoo(all_: Annotated[bool, typer.Option("--all", help="Include tiny test models.")] = False) -> None:
    """List the named models a recipe can use as `model.source`."""
    import importlib.util

    from edgetl.models.zoo import ZOO

    for entry in ZOO.values():
        if entry.testing and not all_:
            continue
        installed = importlib.util.find_spec(entry.module) is not None
        typer.echo(f"{entry.name:20s} {entry.task:6s} {'installed' if installed else 'MISSING  '}  {entry.description}")
    typer.echo("also: hf:<hub id or folder> (Hugging Face image/sequence classification), a saved model folder, "
               "or python:package.module:function (your own model's factory, docs/api.md)")


# Commands defined in edgetl/commands/*.py: (command name, "module:function"). One line each.
COMMANDS: list[tuple[str, str]] = [
    ("bundle", "edgetl.commands.bundle:bundle"),
    ("export", "edgetl.commands.export:export"),
    ("quantize", "edgetl.commands.quantize:quantize"),
    ("build-engine", "edgetl.commands.build_engine:build_engine"),
    ("bench", "edgetl.commands.bench:bench"), ("bench-suite", "edgetl.commands.bench:bench_suite"),
    ("check-qdq", "edgetl.commands.check_qdq:check_qdq"),
    ("rank", "edgetl.commands.rank:rank"),
    ("search", "edgetl.commands.search:search"),
]


def _register_commands() -> None:
    import importlib

    for name, target in COMMANDS:
        module_name, _, attr = target.partition(":")
        app.command(name=name)(getattr(importlib.import_module(module_name), attr))


_register_commands()


def main() -> None:
    app(prog_name="edgetl")


if __name__ == "__main__":
    sys.exit(main())
