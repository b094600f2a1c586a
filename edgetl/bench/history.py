"""Benchmark history (SQLite) and the regression rule of the nightly suite.

One row per measurement: suite entry name, model sha256, backend, batch, threads, machine fingerprint,
the summary and the raw timings. A measurement is compared only with recent rows of the same entry name,
backend, batch size and machine fingerprint (other machines are never mixed in); a changed model sha or
thread count is reported next to the verdict, since that is usually the cause of a change.

Regression rule: the slowdown of p50 against the median p50 of the last `window` runs must exceed BOTH
`threshold_pct` AND the noise of recent runs (the largest relative deviation of their p50s from their
median, and never less than the within-run spread, the IQR / median of the timings); the same must hold for
p50 relative to the suite's one-thread reference workload timed in the same run (so a busier machine is not
a regression); and an automatic re-run must show the same. Anything less is reported as noise.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    suite TEXT NOT NULL,
    session TEXT NOT NULL,
    created TEXT NOT NULL,
    name TEXT NOT NULL,
    model_sha TEXT NOT NULL,
    backend TEXT NOT NULL,
    batch INTEGER NOT NULL,
    threads INTEGER,
    machine_fp TEXT NOT NULL,
    fingerprint TEXT,
    p50 REAL NOT NULL, p90 REAL, p99 REAL, mean REAL, cov REAL, n INTEGER,
    samples_per_s REAL,
    ref_p50 REAL,
    accuracy REAL,
    rerun INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    raw_ms TEXT,
    environment TEXT
);
CREATE INDEX IF NOT EXISTS runs_key ON runs (name, backend, batch, machine_fp, id);
"""
COLUMNS = ("suite", "session", "created", "name", "model_sha", "backend", "batch", "threads", "machine_fp", "fingerprint",
           "p50", "p90", "p99", "mean", "cov", "n", "samples_per_s", "ref_p50", "accuracy", "rerun", "verdict", "raw_ms",
           "environment")


class History:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}
        if "ref_p50" not in columns:  # a history file from before the reference workload
            self.db.execute("ALTER TABLE runs ADD COLUMN ref_p50 REAL")

    def add(self, row: dict[str, Any]) -> int:
        values = {"rerun": 0, **row}
        for k in ("raw_ms", "environment"):
            if values.get(k) is not None and not isinstance(values[k], str):
                values[k] = json.dumps(values[k])
        cur = self.db.execute(
            f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
            [values.get(c) for c in COLUMNS])
        self.db.commit()
        return int(cur.lastrowid)

    def set_verdict(self, row_id: int, verdict: str) -> None:
        self.db.execute("UPDATE runs SET verdict = ? WHERE id = ?", (verdict, row_id))
        self.db.commit()

    def recent(self, name: str, backend: str, batch: int, machine_fp: str, *, limit: int,
               before_id: int | None = None) -> list[dict[str, Any]]:
        """The last `limit` first-pass (not re-run) measurements of this key, oldest first."""
        q = ("SELECT * FROM runs WHERE name = ? AND backend = ? AND batch = ? AND machine_fp = ? AND rerun = 0"
             + (" AND id < ?" if before_id is not None else "") + " ORDER BY id DESC LIMIT ?")
        args: list[Any] = [name, backend, batch, machine_fp] + ([before_id] if before_id is not None else []) + [limit]
        return [dict(r) for r in reversed(self.db.execute(q, args).fetchall())]

    def series(self, name: str, backend: str, batch: int, machine_fp: str) -> list[dict[str, Any]]:
        q = ("SELECT id, created, session, p50, p90, p99, ref_p50, rerun, verdict, model_sha, threads FROM runs WHERE name = ? "
             "AND backend = ? AND batch = ? AND machine_fp = ? ORDER BY id")
        return [dict(r) for r in self.db.execute(q, (name, backend, batch, machine_fp)).fetchall()]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def within_run_noise(raw_ms: list[float] | None) -> float:
    """IQR / median of one run's timings: how much a single measurement wobbles."""
    if not raw_ms or len(raw_ms) < 4:
        return 0.0
    q25, q50, q75 = np.percentile(np.asarray(raw_ms, dtype=np.float64), [25, 50, 75])
    return float((q75 - q25) / q50) if q50 > 0 else 0.0


@dataclass
class Assessment:
    verdict: str  # "no-history" | "ok" | "faster" | "machine-noise" | "suspect" (regression before the re-run)
    baseline_p50: float | None
    current_p50: float
    change: float | None  # current / baseline - 1 (positive = slower)
    threshold: float  # the percentage rule, as a fraction
    noise: float | None  # the noise rule, as a fraction
    history_runs: int
    notes: list[str]
    relative_change: float | None = None  # the same, for p50 / reference p50 (None without a reference)
    relative_noise: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _change_and_noise(current: float, history: list[float], within: float) -> tuple[float, float, float]:
    base = statistics.median(history)
    run_to_run = max(abs(p / base - 1.0) for p in history) if len(history) >= 2 else 0.0
    return base, current / base - 1.0, max(run_to_run, within)


def assess(current_p50: float, current_raw: list[float] | None, baseline: list[dict[str, Any]], *,
           threshold_pct: float, current_sha: str | None = None, current_threads: int | None = None,
           current_ref: float | None = None) -> Assessment:
    """Compare one measurement with recent history (rows as stored by History).

    With a reference (`current_ref` and `ref_p50` in the rows) the slowdown must show both in the raw p50 and in
    p50 / reference p50: a machine that was merely busier slows the reference too and is reported as
    `machine-noise`, never as a regression."""
    threshold = threshold_pct / 100.0
    if not baseline:
        return Assessment("no-history", None, current_p50, None, threshold, None, 0,
                          ["first run of this model/backend/batch on this machine: baseline starts here"])
    within = max([within_run_noise(current_raw)] + [within_run_noise(_raw(r)) for r in baseline[-1:]])
    base, change, noise = _change_and_noise(current_p50, [float(r["p50"]) for r in baseline], within)
    rel_change = rel_noise = None
    with_ref = [r for r in baseline if r.get("ref_p50")]
    if current_ref and with_ref:
        _, rel_change, rel_noise = _change_and_noise(
            current_p50 / current_ref, [float(r["p50"]) / float(r["ref_p50"]) for r in with_ref], within)
    notes = []
    last = baseline[-1]
    if current_sha and last.get("model_sha") and current_sha != last["model_sha"]:
        notes.append(f"model changed: sha {last['model_sha'][:12]} -> {current_sha[:12]}")
    if current_threads is not None and last.get("threads") is not None and int(last["threads"]) != int(current_threads):
        notes.append(f"threads changed: {last['threads']} -> {current_threads}")

    def beyond(c: float | None, n: float | None, sign: int) -> bool:
        return c is not None and n is not None and sign * c > threshold and sign * c > n

    raw_slow, raw_fast = beyond(change, noise, 1), beyond(change, noise, -1)
    if rel_change is None:
        verdict = "suspect" if raw_slow else "faster" if raw_fast else "ok"
    elif raw_slow and beyond(rel_change, rel_noise, 1):
        verdict = "suspect"
    elif raw_fast and beyond(rel_change, rel_noise, -1):
        verdict = "faster"
    elif raw_slow or raw_fast:
        verdict = "machine-noise"
        notes.append(f"the reference workload moved too ({100 * change:+.1f} % raw, {100 * rel_change:+.1f} % relative "
                     "to the reference): the machine, not the model")
    else:
        verdict = "ok"
    return Assessment(verdict, base, current_p50, change, threshold, noise, len(baseline), notes, rel_change, rel_noise)


def _raw(row: dict[str, Any]) -> list[float] | None:
    raw = row.get("raw_ms")
    if isinstance(raw, str):
        return json.loads(raw)
    return raw
