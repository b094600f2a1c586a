"""`edgetl search RECIPE`: an Optuna study over the knobs of the recipe's `search:` block. Each trial is a normal
run folder (OUT/trials/NNNN) made with `--set` overrides; trials share every identical stage through a stage
store (OUT/store, edgetl/pipeline/store.py), so the fine-tune that every trial starts from runs once. The study
lives in Optuna's storage (default: SQLite at OUT/search.db; a journal file or a PostgreSQL/MySQL URL for workers
on several machines that share OUT): killed and rerun, the finished trials are kept and the study goes on.
Several workers (`--workers N` here, or the same command on other machines) join one study. The chosen trial is
re-run into OUT/best without the trials-only overrides (`search.trial_set`): its report is the search's result,
and `edgetl bundle OUT/best` ships it.

Optuna rather than our own loop: its samplers (TPE with constraints), storages that several processes and
machines share safely, and parameter importances are what this needs, well kept."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgetl.errors import EdgetlError, RecipeError
from edgetl.recipe.load import load_recipe
from edgetl.recipe.schema import RecipeBase, SearchConfig, SearchParam
from edgetl.runtime.files import write_json_atomic

log = logging.getLogger(__name__)


def storage_for(url: str | None, out: Path) -> Any:
    """An Optuna storage: SQLite in OUT by default, `journal:PATH` for a journal file, or an RDB URL as is."""
    import optuna

    if url is None:
        url = f"sqlite:///{(out / 'search.db').resolve()}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    # SQLite from several processes: wait for the write lock instead of failing at once
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def suggest(trial: Any, path: str, spec: SearchParam) -> Any:
    if spec.choices is not None:
        if any(isinstance(c, list) for c in spec.choices):  # Optuna's choices are scalars: lists go as JSON text
            return json.loads(trial.suggest_categorical(path, [json.dumps(c) for c in spec.choices]))
        return trial.suggest_categorical(path, spec.choices)
    assert spec.low is not None and spec.high is not None  # a range (SearchParam checked it)
    if spec.integer:
        return trial.suggest_int(path, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(path, spec.low, spec.high, step=spec.step, log=spec.log)


def final_row(report: dict[str, Any]) -> dict[str, Any]:
    """The report's final artifact: p50, accuracy, size, and whether every target passed."""
    final = next((a for a in report["artifacts"] if a["name"] == report.get("final")), None)
    if final is None or not final.get("latency_ms"):
        raise RecipeError("a search needs the final artifact's latency: the recipe must end with a benchmark stage "
                          "that measures it")
    targets = report.get("targets") or []
    return {"artifact": final["name"], "path": final["path"], "p50_ms": final["latency_ms"]["p50"],
            "accuracy": final.get("accuracy"),
            "size_mb": round(final["size_bytes"] / 1e6, 3),
            "targets_passed": all(t["passed"] is True for t in targets),
            "targets": [{k: t[k] for k in ("target", "limit", "value", "passed")} for t in targets]}


def search(recipe_path: Path, out: Path, *, trials: int | None = None, storage: str | None = None, workers: int = 1,
           sets: list[str] | None = None, rerun_best: bool = True) -> dict[str, Any]:
    """Run (or continue) the study of `recipe_path`'s `search:` block into `out`; returns the summary that is also
    written as OUT/search.json and OUT/search.md."""
    try:
        import optuna
    except ImportError:
        raise RecipeError("edgetl search needs Optuna, which is not installed",
                          hint="pip install 'edgetl[search]'") from None

    sets = list(sets or [])
    base = load_recipe(recipe_path, sets)
    if base.search is None:
        raise RecipeError(f"{recipe_path} has no `search:` block",
                          hint="add e.g. search: {params: {stages.2.target.macs_ratio: [0.2, 0.7]}, trials: 12}")
    cfg = base.search
    total = trials or cfg.trials
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _check_knobs(recipe_path, sets, cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(base, cfg, storage_for(storage, out))
    helpers = [_start_worker(recipe_path, out, total, storage, sets) for _ in range(max(0, workers - 1))]
    try:
        if len(study.get_trials(deepcopy=False, states=_counted())) < total:  # (a finished study runs no more)
            study.optimize(lambda t: _trial(t, recipe_path, out, sets, cfg), catch=(EdgetlError,),
                           callbacks=[optuna.study.MaxTrialsCallback(total, states=_counted())])
    finally:
        for p in helpers:
            p.wait()
    failed = [p.args for p in helpers if p.returncode]
    if failed:
        log.warning("%d worker(s) ended with an error; their trials are marked failed in the study", len(failed))
    summary = summarize(study, cfg)
    retime(summary, base.seed)
    if rerun_best and summary["chosen"] is not None:
        chosen = summary["chosen"]
        log.info("re-running trial %d without the trials-only overrides into %s", chosen["number"], out / "best")
        recipe = load_recipe(recipe_path, sets + chosen["sets"])
        report = _compress(recipe, recipe_path, out / "best", out)
        summary["best"] = {"run": str(out / "best"), **final_row(report)}
        if cfg.peers:  # (on the re-run's own data: a knob may have changed a data field)
            summary["comparison"] = compare_with_peers(out / "best", report, recipe, out / "peers")
    write_json_atomic(out / "search.json", summary)
    from edgetl.pipeline.search_report import write_search_report

    write_search_report(summary, out)
    return summary


def _counted() -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _study(base: RecipeBase, cfg: SearchConfig, storage: Any) -> Any:
    import optuna

    if cfg.sampler == "random":
        sampler: Any = optuna.samplers.RandomSampler(seed=base.seed)
    else:  # (TPE reads each trial's constraint, set by _trial: <= 0 feasible)
        sampler = optuna.samplers.TPESampler(seed=base.seed)
    directions = ["minimize"] if cfg.objective == "latency" else ["minimize", "maximize"]
    # each trial reports, after every stage, how far its model is above the accuracy the targets allow (negative:
    # below); a trial already more than prune_slack below is pruned (see budget_guard)
    pruner = (optuna.pruners.ThresholdPruner(lower=-cfg.prune_slack) if cfg.prune_slack is not None
              else optuna.pruners.NopPruner())
    return optuna.create_study(study_name=base.name, storage=storage, sampler=sampler, pruner=pruner,
                               directions=directions, load_if_exists=True)


def _check_knobs(recipe_path: Path, sets: list[str], cfg: SearchConfig) -> None:
    """Every knob at its low (or first) value makes a valid recipe: a typo in a path fails now, naming it."""
    probe = []
    for path, spec in cfg.params.items():
        value = spec.choices[0] if spec.choices is not None else spec.low
        probe.append(f"{path}={_yaml(int(value) if spec.integer and value is not None else value)}")
    try:
        load_recipe(recipe_path, sets + cfg.trial_set + probe)
    except RecipeError as err:
        raise RecipeError(f"search.params: the knobs do not fit {recipe_path}: {err}",
                          problems=err.problems, hint="each knob must name a field the recipe has") from None


def _yaml(value: Any) -> str:
    return (json.dumps(value) if isinstance(value, (str, list)) else str(value).lower() if isinstance(value, bool)
            else str(value))


def _trial(trial: Any, recipe_path: Path, out: Path, sets: list[str], cfg: SearchConfig) -> Any:
    chosen = [f"{path}={_yaml(suggest(trial, path, spec))}" for path, spec in cfg.params.items()]
    run = out / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run", str(run))
    trial.set_user_attr("sets", chosen)
    recipe = load_recipe(recipe_path, sets + cfg.trial_set + chosen)
    guard = budget_guard(trial, recipe.targets) if cfg.prune_slack is not None and cfg.objective == "latency" else None
    try:
        report = _compress(recipe, recipe_path, run, out, after_stage=guard)
    except EdgetlError as err:  # a gate or a budget failed for these values: the trial fails, the study goes on
        trial.set_user_attr("error", err.render()[:2000])
        raise
    row = final_row(report)
    for key, value in row.items():
        trial.set_user_attr(key, value)
    trial.set_constraint("targets", 0.0 if row["targets_passed"] else 1.0)  # <= 0: feasible (Optuna)
    log.info("trial %d: %s -> p50 %.3f ms, accuracy %s, targets %s", trial.number, " ".join(chosen), row["p50_ms"],
             row["accuracy"], "met" if row["targets_passed"] else "missed")
    if cfg.objective == "latency":
        return row["p50_ms"]
    return row["p50_ms"], row["accuracy"] if row["accuracy"] is not None else -math.inf


def budget_guard(trial: Any, targets: Any) -> Any:
    """The runner's after-stage hook of a trial: report the margin of the newest accuracy over what the targets
    allow, and prune the trial when Optuna's pruner says so. Multi-objective studies cannot prune (Optuna)."""
    import optuna

    def after(index: int, artifacts: dict[str, Any]) -> None:
        accs = [a.metrics["accuracy"] for a in artifacts.values() if a.metrics.get("accuracy") is not None]
        if len(accs) < 2:  # (the first accuracy is the reference of max_accuracy_drop)
            return
        floors = ([accs[0] - targets.max_accuracy_drop] if targets.max_accuracy_drop is not None else []) + (
            [targets.min_accuracy] if targets.min_accuracy is not None else [])
        if not floors:
            return
        margin = accs[-1] - max(floors)
        trial.report(margin, index)
        if trial.should_prune():
            reason = (f"pruned after stage {index}: accuracy {accs[-1]:.4f} is {-margin:.4f} below what the targets "
                      f"allow ({max(floors):.4f})")
            trial.set_user_attr("pruned", reason)
            log.info("trial %d %s", trial.number, reason)
            raise optuna.TrialPruned(reason)

    return after


def _compress(recipe: RecipeBase, recipe_path: Path, run: Path, out: Path, after_stage: Any = None) -> dict[str, Any]:
    from edgetl.pipeline.runner import compress

    return compress(recipe, run, recipe_file=str(recipe_path), stage_store=out / "store", after_stage=after_stage)


def _start_worker(recipe_path: Path, out: Path, total: int, storage: str | None, sets: list[str]) -> Any:
    """Another process joining the study (the same command with --workers 1 and no re-run of the best)."""
    url = storage or f"sqlite:///{(out / 'search.db').resolve()}"
    cmd = [sys.executable, "-m", "edgetl", "search", str(recipe_path), "--out", str(out), "--trials", str(total),
           "--storage", url, "--workers", "1", "--no-rerun-best", *[a for s in sets for a in ("--set", s)]]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(study: Any, cfg: SearchConfig) -> dict[str, Any]:
    """Every trial with its values, the accuracy / latency front, the chosen trial and the knobs' importances."""
    from optuna.trial import TrialState

    rows = []
    for t in study.trials:
        row = {"number": t.number, "state": t.state.name, "params": dict(t.params), "sets": t.user_attrs.get("sets", []),
               "run": t.user_attrs.get("run")}
        for key in ("p50_ms", "accuracy", "size_mb", "targets_passed", "targets", "path", "error", "pruned"):
            if key in t.user_attrs:
                row[key] = t.user_attrs[key]
        rows.append(row)
    done = [r for r in rows if r["state"] == TrialState.COMPLETE.name and "p50_ms" in r]
    front = pareto_front(done)
    for r in done:
        r["on_front"] = r["number"] in front
    feasible = [r for r in done if r["targets_passed"]]
    pool = [r for r in feasible if r["on_front"]] if cfg.objective == "pareto" else feasible
    chosen = min(pool, key=lambda r: r["p50_ms"]) if pool else None
    try:
        import optuna

        importances = {k: round(v, 4) for k, v in optuna.importance.get_param_importances(
            study, target=(lambda t: t.values[0]) if cfg.objective == "pareto" else None).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):  # fewer than two finished trials, or one value only
        importances = {}
    return {"study": study.study_name, "objective": cfg.objective, "trials": rows, "front": front,
            "chosen": chosen, "importances": importances,
            "counts": {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "FAIL", "PRUNED", "RUNNING")}}


RETIME_AT_MOST = 6  # trials re-timed side by side before choosing
RETIME_ITERATIONS = 300


def retime(summary: dict[str, Any], seed: int) -> None:
    """Choose again on latencies measured side by side. Each trial's p50 comes from its own benchmark run, and
    between runs a shared machine drifts by as much as trials differ; so the candidates (the feasible trials on the
    front, or the fastest feasible ones) are timed again interleaved in one process, and the chosen trial is the
    fastest of those. Their rows get `p50_ms_interleaved`."""
    from edgetl.bench.api import benchmark

    done = [r for r in summary["trials"] if r.get("targets_passed") and r.get("path") and r.get("run")]
    if summary["objective"] == "pareto":
        done = [r for r in done if r.get("on_front")]
    pool = sorted(done, key=lambda r: r["p50_ms"])[:RETIME_AT_MOST]
    if len(pool) < 2:
        return
    files = {f"trial-{r['number']}": Path(r["run"]) / r["path"] for r in pool}
    rows = benchmark(files, None, {"iterations": RETIME_ITERATIONS, "threads": 2}, seed=seed).metrics["results"]
    for r in pool:
        r["p50_ms_interleaved"] = rows[f"trial-{r['number']}"]["latency_ms"]["p50"]
    summary["chosen"] = min(pool, key=lambda r: r["p50_ms_interleaved"])
    summary["chosen_by"] = (f"p50 of the {len(pool)} candidates re-timed interleaved in one process "
                            f"({RETIME_ITERATIONS} iterations each, batch 1, 2 threads, seeded random inputs)")


COMPARE_ITERATIONS = 500


def compare_with_peers(run: Path, report: dict[str, Any], recipe: RecipeBase, out: Path) -> dict[str, Any]:
    """The re-run's final file, its FP32 baseline and a careful ONNX Runtime PTQ of that baseline, timed interleaved
    in one process and scored on the recipe's eval split: speed-ups and accuracy losses against one measurement."""
    from edgetl.bench.api import benchmark
    from edgetl.data.datasets import load_data
    from edgetl.quant.peers import careful_ort_ptq

    arts = {a["name"]: a for a in report["artifacts"]}
    baseline, final = arts.get(report.get("baseline") or ""), arts.get(report.get("final") or "")
    if baseline is None or final is None or baseline["format"] != "onnx":
        return {}
    data = load_data(recipe.data)
    fp32 = run / baseline["path"]
    peer, info = careful_ort_ptq(fp32, out / "ort-ptq-careful", data.train, seed=recipe.seed)
    files = {"fp32": fp32, "edgetl": run / final["path"], "ort-ptq-careful": peer}
    rows = benchmark(files, data, {"iterations": COMPARE_ITERATIONS, "threads": 2}, seed=recipe.seed).metrics["results"]
    p50 = {k: rows[k]["latency_ms"]["p50"] for k in files}
    points = {k: {"p50_ms": p50[k], "accuracy": rows[k].get("accuracy"), "size_mb": round(rows[k]["size_bytes"] / 1e6, 3),
                  "speedup_vs_fp32": round(p50["fp32"] / p50[k], 3),
                  "smaller_than_fp32": round(rows["fp32"]["size_bytes"] / rows[k]["size_bytes"], 2)} for k in files}
    log.info("side by side: %s", ", ".join(f"{k} {v['p50_ms']:.3f} ms ({v['speedup_vs_fp32']:.2f}x), accuracy "
                                            f"{v['accuracy']}" for k, v in points.items()))
    return {"points": points, "peer": info, "measured": f"interleaved in one process, {COMPARE_ITERATIONS} iterations "
            "each, batch 1, 2 threads; accuracy on the recipe's eval split", "eval_samples": len(data.eval)}


def pareto_front(rows: list[dict[str, Any]]) -> list[int]:
    """Trial numbers no other trial beats on both p50 (lower) and accuracy (higher)."""
    def acc(r: dict[str, Any]) -> float:
        return r["accuracy"] if r.get("accuracy") is not None else -math.inf

    return sorted(r["number"] for r in rows if not any(
        o["p50_ms"] <= r["p50_ms"] and acc(o) >= acc(r) and (o["p50_ms"] < r["p50_ms"] or acc(o) > acc(r))
        for o in rows))
