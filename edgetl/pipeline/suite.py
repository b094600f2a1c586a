"""Nightly benchmark suites: models x backends x batch sizes from a YAML file, measured with the shared
runner, appended to a SQLite history, judged against recent history (see edgetl.bench.history for the
rule), suspected regressions re-run to confirm, and a Markdown + HTML report with trend plots written.
In the pipeline layer because an entry may name a run folder that `compress` builds from its recipe first.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from edgetl.errors import BenchmarkError, RecipeError
from edgetl.recipe.schema import StrictModel

log = logging.getLogger(__name__)


class SuiteModel(StrictModel):
    name: str = Field(description="Stable name of this entry: history is compared by name, so keep it across nights.",
                      pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | None = Field(None, description="A model file or folder (.onnx, engine, saved model folder); relative "
                                               "to the suite file.")
    run: str | None = Field(None, description="A run folder of `edgetl compress` (relative to the suite file).")
    artifact: str | None = Field(None, description="With `run`: the artifact name in its manifest (e.g. onnx_int8).")
    recipe: str | None = Field(None, description="With `run`: the recipe that builds the run folder when it is missing.")
    backends: list[str] | None = Field(None, description="Backends for this model (default: the suite's).")
    batches: list[int] | None = Field(None, description="Batch sizes for this model (default: the suite's).")
    data: str | None = Field(None, description="Eval data for accuracy: a named set, an imagefolder or a CSV file.")
    eval_limit: int | None = Field(None, gt=0, description="At most this many eval examples.")
    iterations: int | None = Field(None, ge=1, description="Timed iterations for this model (default: the suite's).")

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.path) == bool(self.run):
            raise ValueError("give exactly one of `path` (a model file) or `run` + `artifact` (a run folder)")
        if self.run and not self.artifact:
            raise ValueError("`run` needs `artifact`: the artifact name in the run's manifest, e.g. onnx_int8")
        return self


class RegressionConfig(StrictModel):
    threshold_pct: float = Field(10.0, gt=0, le=1000, description="A slowdown of p50 must exceed this percentage ...")
    window: int = Field(5, ge=1, le=100, description="... and the noise of this many recent runs (same name, backend, "
                                                     "batch, machine fingerprint).")
    rerun: bool = Field(True, description="Re-run a suspected regression; only a confirmed one fails the suite.")
    reference: bool = Field(True, description="Time a fixed one-thread reference workload with the models and require "
                                              "the slowdown relative to it too (a busier machine is not a regression).")


class SuiteConfig(StrictModel):
    name: str = Field(description="Suite name (stored with every history row).", min_length=1)
    threads: int = Field(2, ge=1, le=256, description="Intra-op threads of every measurement.")
    iterations: int = Field(1000, ge=1, description="Timed iterations at the latency batch (nightly: >= 1000 or 60 s).")
    min_seconds: float = Field(0.0, ge=0, description="Timed seconds per model, at least.")
    warmup_seconds: float = Field(0.5, ge=0, description="Warm-up seconds, at least (then until stable).")
    backends: list[str] = Field(default_factory=lambda: ["ort-cpu"], description="Default backends of every model.")
    batches: list[int] = Field(default_factory=lambda: [1], description="Default batch sizes: latency batch first, "
                                                                        "then the throughput sweep.")
    report_dir: str = Field("results/nightly", description="Where the report goes (relative to the suite file).")
    regression: RegressionConfig = Field(default_factory=RegressionConfig, description="The regression rule.")
    models: list[SuiteModel] = Field(min_length=1, description="What to measure.")
    base_dir: str | None = Field(None, description="Folder relative paths resolve from (default: the suite file's).")

    def resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else Path(self.base_dir or ".") / p


def load_suite(path: str | Path, overrides: list[str] | None = None) -> SuiteConfig:
    from edgetl.recipe.load import apply_override, read_yaml

    path = Path(path)
    if not path.exists():
        raise RecipeError(f"suite file {path} does not exist", hint="e.g. edgetl bench-suite benchmarks/nightly.yaml")
    data = read_yaml(path)
    for o in overrides or []:
        apply_override(data, o)
    data.setdefault("base_dir", str(path.resolve().parent))
    try:
        return SuiteConfig(**data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise RecipeError(f"{path} is not a valid suite file", problems=problems) from None


def _targets(cfg: SuiteConfig, m: SuiteModel):
    from edgetl.bench.runner import target_from_path, targets_from_run

    if m.path:
        t = target_from_path(cfg.resolve(m.path), name=m.name)
        if len(t) != 1:
            raise BenchmarkError(f"models.{m.name}.path: {m.path} holds {len(t)} models; give one file")
        return t
    run = cfg.resolve(m.run or "")
    if not (run / "manifest.json").exists():
        if not m.recipe:
            raise BenchmarkError(f"models.{m.name}: run folder {run} has no manifest.json and no `recipe` builds it",
                                 hint=f"run `edgetl compress RECIPE --out {run}` first, or add `recipe:` to the entry")
        from edgetl.pipeline.runner import compress
        from edgetl.recipe.load import load_recipe

        log.info("building %s with %s", run, m.recipe)
        compress(load_recipe(cfg.resolve(m.recipe)), run, recipe_file=str(cfg.resolve(m.recipe)))
    t = targets_from_run(run, [m.artifact or ""])
    t[0].name = m.name
    return t


def _measure(cfg: SuiteConfig, entries: list[SuiteModel]) -> list[dict[str, Any]]:
    """Measure entries, grouped by identical settings so each group is timed interleaved in one call."""
    from edgetl.bench.runner import BenchOptions, run_benchmark
    from edgetl.data.datasets import load_eval_data

    groups: dict[tuple, list[SuiteModel]] = {}
    for m in entries:
        key = (tuple(m.backends or cfg.backends), tuple(m.batches or cfg.batches), m.data, m.eval_limit,
               m.iterations or cfg.iterations)
        groups.setdefault(key, []).append(m)
    rows: list[dict[str, Any]] = []
    for (backends, batches, data, eval_limit, iterations), ms in groups.items():
        targets = [t for m in ms for t in _targets(cfg, m)]
        if cfg.regression.reference:
            from edgetl.bench.reference import REFERENCE_NAME, reference_model
            from edgetl.bench.runner import target_from_path

            ref = target_from_path(reference_model(), name=REFERENCE_NAME)[0]
            ref.threads = 1
            targets.append(ref)
        bundle = load_eval_data(data, eval_limit) if data else None
        opts = BenchOptions(backends=list(backends), batches=list(batches), threads=cfg.threads,
                            iterations=iterations, min_seconds=cfg.min_seconds, warmup_seconds=cfg.warmup_seconds)
        result = run_benchmark(targets, opts, eval_split=bundle.eval if bundle else None,
                               label_names=bundle.label_names if bundle else None)
        from edgetl.bench.reference import REFERENCE_NAME

        refs = {(r["backend"], tp["batch_size"]): tp["latency_ms"]["p50"] for r in result["results"]
                if r["model"] == REFERENCE_NAME and r["status"] == "ok" for tp in r["throughput"]}
        for r in result["results"]:
            if r["model"] == REFERENCE_NAME:
                continue
            r["machine_fingerprint"] = result["machine_fingerprint"]
            r["environment"] = result["environment"]
            r["reference_p50"] = {b: p for (be, b), p in refs.items() if be == r["backend"]}
            rows.append(r)
    return rows


def _history_rows(cfg: SuiteConfig, r: dict[str, Any], session: str, rerun: bool) -> list[dict[str, Any]]:
    """One history row per batch size of a result row (latency batch + throughput sweep)."""
    out = []
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for tp in r.get("throughput", []):
        lat = tp["latency_ms"]
        raw = r["raw_ms"] if tp["batch_size"] == r["batch_size"] else tp.get("raw_ms")
        out.append({"suite": cfg.name, "session": session, "created": now, "name": r["model"], "model_sha": r["sha256"],
                    "backend": r["backend"], "batch": tp["batch_size"], "threads": r["threads"],
                    "machine_fp": r["machine_fingerprint"], "fingerprint": r["fingerprint"], "p50": lat["p50"],
                    "p90": lat["p90"], "p99": lat["p99"], "mean": lat["mean"], "cov": lat["cov"], "n": lat["n"],
                    "samples_per_s": tp["samples_per_s"], "accuracy": r.get("accuracy"), "rerun": int(rerun),
                    "ref_p50": (r.get("reference_p50") or {}).get(tp["batch_size"]),
                    "raw_ms": raw, "environment": r["environment"]})
    return out


def run_suite(cfg: SuiteConfig, history_path: str | Path, *, out_dir: str | Path | None = None,
              rerun: bool = True) -> dict[str, Any]:
    from edgetl.bench.history import History, assess
    from edgetl.runtime.files import write_json_atomic

    session = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    hist = History(history_path)
    reg = cfg.regression
    rows = _measure(cfg, cfg.models)
    checks: list[dict[str, Any]] = []
    unavailable = [r for r in rows if r["status"] != "ok"]
    for r in rows:
        if r["status"] != "ok":
            continue
        for h in _history_rows(cfg, r, session, rerun=False):
            baseline = hist.recent(h["name"], h["backend"], h["batch"], h["machine_fp"], limit=reg.window)
            a = assess(h["p50"], h["raw_ms"], baseline, threshold_pct=reg.threshold_pct, current_sha=h["model_sha"],
                       current_threads=h["threads"], current_ref=h["ref_p50"])
            h["verdict"] = a.verdict
            row_id = hist.add(h)
            checks.append({"name": h["name"], "backend": h["backend"], "batch": h["batch"], "row_id": row_id,
                           "machine_fp": h["machine_fp"], "model_sha": h["model_sha"], "threads": h["threads"],
                           "baseline": baseline, **a.to_dict(), "accuracy": h["accuracy"],
                           "samples_per_s": h["samples_per_s"], "cov": h["cov"], "ref_p50": h["ref_p50"]})

    suspects = [c for c in checks if c["verdict"] == "suspect"]
    if suspects and rerun and reg.rerun:
        names = sorted({c["name"] for c in suspects})
        log.info("suspected regression in %s: re-running to confirm", ", ".join(names))
        again = _measure(cfg, [m for m in cfg.models if m.name in names])
        by_key = {}
        for r in again:
            if r["status"] == "ok":
                for h in _history_rows(cfg, r, session, rerun=True):
                    by_key[(h["name"], h["backend"], h["batch"])] = h
        for c in suspects:
            h = by_key.get((c["name"], c["backend"], c["batch"]))
            if h is None:
                c["verdict"] = "unconfirmed"
                continue
            a = assess(h["p50"], h["raw_ms"], c["baseline"], threshold_pct=reg.threshold_pct, current_ref=h["ref_p50"])
            c["rerun_p50"] = h["p50"]
            c["rerun_change"] = a.change
            c["rerun_relative_change"] = a.relative_change
            c["verdict"] = "regression" if a.verdict == "suspect" else "unconfirmed"
            h["verdict"] = c["verdict"]
            hist.add(h)
            hist.set_verdict(c["row_id"], c["verdict"])
    elif suspects:
        for c in suspects:
            c["verdict"] = "regression" if not reg.rerun else "suspect (not re-run)"
            hist.set_verdict(c["row_id"], c["verdict"])

    regressions = [c for c in checks if c["verdict"] == "regression"]
    report_dir = Path(out_dir) if out_dir else cfg.resolve(cfg.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    from edgetl.bench.report import write_suite_report

    md_path, html_path = write_suite_report(cfg, hist, checks, unavailable, report_dir, session)
    lines = [_line(c) for c in checks]
    lines += [f"{r['model']} on {r['backend']}: {r['status']}: {r.get('reason')} (how to get it: {r.get('hint')})"
              for r in unavailable]
    lines.append(f"{len(regressions)} confirmed regression(s)" if regressions else "no confirmed regression")
    summary = {"suite": cfg.name, "session": session, "history": str(history_path), "checks": [
        {k: v for k, v in c.items() if k != "baseline"} for c in checks],
        "unavailable": [{k: r.get(k) for k in ("model", "backend", "status", "reason", "hint")} for r in unavailable],
        "regressions": [{k: c[k] for k in ("name", "backend", "batch", "change", "rerun_change", "notes")}
                        for c in regressions],
        "report_md": str(md_path), "report_html": str(html_path), "lines": lines}
    write_json_atomic(report_dir / "suite-result.json", summary)
    hist.close()
    return summary


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f} %"


def _line(c: dict[str, Any]) -> str:
    base = "-" if c["baseline_p50"] is None else f"{c['baseline_p50']:.3f}"
    rel = "" if c.get("relative_change") is None else (f"; vs reference {_pct(c['relative_change'])}, noise "
                                                        f"{_pct(c.get('relative_noise'))}")
    text = (f"{c['name']:<12} {c['backend']:<8} b{c['batch']:<3} p50 {c['current_p50']:.3f} ms vs {base} ms "
            f"({_pct(c['change'])}, noise {_pct(c['noise'])}{rel}; rule: > {100 * c['threshold']:.0f} % and > noise)  "
            f"{c['verdict'].upper()}")
    if c.get("rerun_p50") is not None:
        text += f"  [re-run {c['rerun_p50']:.3f} ms, {_pct(c.get('rerun_change'))}]"
    if c.get("notes"):
        text += "  (" + "; ".join(c["notes"]) + ")"
    return text
