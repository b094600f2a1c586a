"""`edgetl bench` (measure models now) and `edgetl bench-suite` (nightly suite with history and regression
alerts). Thin layers over edgetl.bench.runner / edgetl.pipeline.suite; heavy imports inside the functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

DATA_HELP = ("Eval data for accuracy and real latency inputs: a named set (fashion_mnist, mnist_5k, rotten_tomatoes), "
             "an imagefolder directory or a CSV file.")


def parse_batches(text: str) -> list[int]:
    from edgetl.errors import BenchmarkError

    try:
        out = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        out = []
    if not out or any(b < 1 for b in out):
        raise BenchmarkError(f"--batch {text!r} is not a list of positive integers", hint="e.g. --batch 1,8,32")
    return out


def parse_shapes(items: list[str]) -> dict[str, list[int]]:
    from edgetl.errors import BenchmarkError

    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shapes[name] = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shapes[name] = []
        if not sep or not name or not shapes[name] or any(d < 1 for d in shapes[name]):
            raise BenchmarkError(f"--shape {item!r} is not NAME=D1xD2...", hint="e.g. --shape pixel_values=3x224x224 "
                                 "(the dimensions after the batch)")
    return shapes


def parse_backends(items: list[str] | None) -> list[str] | None:
    from edgetl.registry import BACKENDS

    if not items:
        return None
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if names == ["all"]:
        return BACKENDS.names()
    for n in names:
        BACKENDS.get(n)  # unknown -> RecipeError listing the known names (exit 2)
    return names


def print_results(result: dict[str, Any]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    opts = result["options"]
    batches = opts["batches"]
    table = Table(title=f"edgetl bench: latency at batch {batches[0]} ({opts['threads']} threads, "
                        f"{result['latency_input']}, machine {result['machine_fingerprint']})")
    cols = ["model", "backend", "accuracy", "p50 ms", "p90 ms", "p99 ms", "max ms", "CoV", "n"]
    cols += [f"samples/s b{b}" for b in batches]
    for c in cols:
        table.add_column(c, justify="left" if c in ("model", "backend") else "right")
    facts = Table(title="model facts")
    for c in ("model", "backend", "size MB", "params", "MMACs", "load +MB", "peak RSS MB", "warm-up iters"):
        facts.add_column(c, justify="left" if c in ("model", "backend") else "right")
    notes = []
    for r in result["results"]:
        if r["status"] != "ok":
            table.add_row(r["model"], r["backend"], f"[yellow]{r['status']}[/]", *["-"] * (len(cols) - 3))
            notes.append(f"{r['model']} on {r['backend']}: {r['status']}: {r.get('reason')}"
                         + (f"\n    how to get it: {r['hint']}" if r.get("hint") else ""))
            continue
        lat = r["latency_ms"]
        tput = {t["batch_size"]: t["samples_per_s"] for t in r.get("throughput", [])}
        acc = r.get("accuracy")
        table.add_row(
            r["model"], r["backend"], "-" if acc is None else f"{acc:.4f}", f"{lat['p50']:.3f}", f"{lat['p90']:.3f}",
            f"{lat['p99']:.3f}", f"{lat['max']:.3f}", f"{100 * lat['cov']:.1f}%" + (" [red]noisy[/]" if lat["noisy"] else ""),
            str(lat["n"]), *[f"{tput[b]:.1f}" if b in tput else "-" for b in batches])
        mem = r.get("memory", {})
        facts.add_row(r["model"], r["backend"], f"{r['size_bytes'] / 1e6:.2f}",
                      "-" if r.get("params") is None else f"{r['params'] / 1e6:.3f}M",
                      "-" if r.get("macs") is None else f"{r['macs'] / 1e6:.1f}", f"{mem.get('load_delta_mb', 0):.0f}",
                      f"{mem.get('peak_rss_mb', 0):.0f}", str(r.get("warmup_iterations")))
    console.print(table)
    console.print(facts)
    for r in result["results"]:
        if r.get("power", {}).get("available"):
            p = r["power"]
            console.print(f"{r['model']} on {r['backend']}: {p['mean_mw']:.0f} mW mean, {p['mj_per_inference']:.2f} mJ "
                          f"per inference ({p['rule']})")
    from rich.markup import escape

    for n in notes:
        console.print(f"[yellow]note:[/] {escape(n)}", soft_wrap=True)
    load = result.get("load") or {}
    if load.get("contended"):
        console.print(f"[yellow]warning:[/] load average {load['loadavg_1m_before']} -> {load['loadavg_1m_after']} on "
                      f"{load['cpu_count']} CPUs: other work competed with this measurement; compare only ratios "
                      "within this run", soft_wrap=True)


def bench(
    models: Annotated[list[Path], typer.Argument(help="ONNX file(s), engine file(s), saved model folder(s) or run folder(s).",
                                                 show_default=False)],
    backend: Annotated[list[str] | None, typer.Option("--backend", "-b", help="Backend(s): torch, ort-cpu, ort-cuda, ort-trt, "
                       "tensorrt, or all (comma-separated or repeated; default: the natural one per model format).",
                       show_default=False)] = None,
    data: Annotated[str | None, typer.Option("--data", help=DATA_HELP, show_default=False)] = None,
    eval_limit: Annotated[int | None, typer.Option("--eval-limit", min=1, help="Use at most this many eval examples "
                          "(stratified, fixed seed).")] = 1000,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes: the first is the single-stream latency batch, "
                     "all of them form the throughput sweep, e.g. 1,8,32.")] = "1",
    threads: Annotated[int, typer.Option("--threads", min=1, max=256, help="Intra-op threads (fixed, recorded).")] = 2,
    iterations: Annotated[int, typer.Option("--iterations", "-n", min=1, help="Timed iterations at the latency batch, at "
                          "least.")] = 200,
    min_seconds: Annotated[float, typer.Option("--min-seconds", min=0, help="Timed seconds per model, at least "
                           "(nightly protocol: 60).")] = 0.0,
    warmup: Annotated[float, typer.Option("--warmup", min=0, help="Warm-up seconds, at least (then until the "
                      "running median settles).")] = 0.2,
    shape: Annotated[list[str] | None, typer.Option("--shape", help="NAME=D1xD2: non-batch dims of an input a bare "
                     "ONNX file leaves dynamic (repeatable).", show_default=False)] = None,
    artifact: Annotated[list[str] | None, typer.Option("--artifact", help="With a run folder: only these artifacts "
                        "(repeatable).", show_default=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result (fingerprint, percentiles, raw "
                        "timings) to this file.", show_default=False)] = None,
    no_power: Annotated[bool, typer.Option("--no-power", help="Do not sample tegrastats on a Jetson.")] = False,
    cpu_time: Annotated[bool, typer.Option("--cpu-time", help="Also record process CPU time per iteration (robust "
                        "when other work shares the machine).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Benchmark MODELS side by side (interleaved): latency percentiles, throughput, accuracy, size, memory."""
    from edgetl.commands.guard import run_guarded
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go():
        from edgetl.bench.runner import BenchOptions, run_benchmark, target_from_path, targets_from_run
        from edgetl.data.datasets import load_eval_data
        from edgetl.runtime.files import write_json_atomic

        opts = BenchOptions(backends=parse_backends(backend), batches=parse_batches(batch), threads=threads,
                            iterations=iterations, min_seconds=min_seconds, warmup_seconds=warmup,
                            shapes=parse_shapes(shape or []), power=not no_power,
                            cpu_time=cpu_time)
        targets = []
        for m in models:
            if artifact and (m / "manifest.json").exists():
                targets += targets_from_run(m, artifact)
            else:
                targets += target_from_path(m)
        bundle = load_eval_data(data, eval_limit) if data else None
        result = run_benchmark(targets, opts, eval_split=bundle.eval if bundle else None,
                               label_names=bundle.label_names if bundle else None)
        print_results(result)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(json_out, result)
            typer.echo(f"wrote {json_out}")

    run_guarded(go)


def bench_suite(
    suite: Annotated[Path, typer.Argument(help="Suite YAML, e.g. benchmarks/nightly.yaml.")],
    history: Annotated[Path, typer.Option("--history", help="SQLite history file (created if missing).")] = Path(
        "benchmarks/history.sqlite"),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder (default: from the suite file).",
                                             show_default=False)] = None,
    no_rerun: Annotated[bool, typer.Option("--no-rerun", help="Do not re-run a suspected regression to confirm it.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a suite field: --set threads=1, "
                    "--set models.1.artifact=onnx_fp32 (repeatable).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run a benchmark suite, append to history, and exit 1 on a confirmed latency regression."""
    from edgetl.commands.guard import run_guarded
    from edgetl.log import setup_logging

    setup_logging(verbose)

    def go():
        from edgetl.pipeline.suite import load_suite, run_suite

        cfg = load_suite(suite, set_ or [])
        summary = run_suite(cfg, history, out_dir=out, rerun=not no_rerun)
        for line in summary["lines"]:
            typer.echo(line)
        typer.echo(f"report: {summary['report_md']}  |  {summary['report_html']}")
        return summary

    summary = run_guarded(go)
    if summary and summary["regressions"]:
        raise typer.Exit(1)
