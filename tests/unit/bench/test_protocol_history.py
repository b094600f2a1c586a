"""Statistics of the timing protocol and the regression rule of the nightly suite."""

import time

import numpy as np
import pytest

from edgetl.bench.history import History, assess, within_run_noise
from edgetl.bench.protocol import summarize, time_interleaved


def test_summary_percentiles_cov_and_noisy_flag():
    s = summarize([float(x) for x in range(1, 101)])
    assert (s["p50"], s["p90"], s["p99"], s["max"], s["n"]) == (50.5, pytest.approx(90.1), pytest.approx(99.01), 100.0, 100)
    assert s["mean"] == 50.5 and s["noisy"] is True  # CoV ~ 0.57
    steady = summarize([10.0, 10.1, 9.9, 10.0] * 25)
    assert steady["cov"] < 0.01 and steady["noisy"] is False
    with pytest.raises(ValueError):
        summarize([])


def test_interleaved_timing_keeps_raw_samples_and_ranks_variants():
    calls = {"fast": 0, "slow": 0}

    def fast():
        calls["fast"] += 1

    def slow():
        calls["slow"] += 1
        time.sleep(0.002)

    warm, cpu = {}, {}
    raw = time_interleaved({"fast": fast, "slow": slow}, iterations=30, chunk=10, warmup_seconds=0.01, warmup_counts=warm,
                           cpu_samples=cpu)
    assert len(raw["fast"]) == len(raw["slow"]) == 30
    assert warm["fast"] >= 5 and warm["slow"] >= 5
    assert calls["fast"] == 30 + warm["fast"]  # warm-up iterations are not in the samples
    assert np.median(raw["slow"]) > 1.9 > np.median(raw["fast"])
    assert len(cpu["slow"]) == 30 and np.median(cpu["slow"]) < 1.0  # sleeping costs wall time, not CPU time


def _row(p50, sha="a" * 64, threads=2, raw=None):
    return {"p50": p50, "model_sha": sha, "threads": threads, "raw_ms": raw}


def test_first_run_has_no_history():
    a = assess(1.0, None, [], threshold_pct=10)
    assert a.verdict == "no-history" and a.baseline_p50 is None


def test_aa_change_within_noise_is_ok_and_slowdown_beyond_both_rules_is_suspect():
    base = [_row(1.00), _row(1.04), _row(0.97)]
    assert assess(1.03, None, base, threshold_pct=10).verdict == "ok"
    slow = assess(1.60, None, base, threshold_pct=10, current_sha="b" * 64)
    assert slow.verdict == "suspect" and slow.change == pytest.approx(0.6)
    assert slow.notes == [f"model changed: sha {'a' * 12} -> {'b' * 12}"]
    assert assess(0.5, None, base, threshold_pct=10).verdict == "faster"


def test_slowdown_over_the_percentage_but_inside_recent_noise_is_not_a_regression():
    noisy = [_row(1.0), _row(1.3), _row(0.8)]  # recent runs swing by 30 %
    a = assess(1.2, None, noisy, threshold_pct=10)
    assert a.change == pytest.approx(0.2) and a.noise == pytest.approx(0.3) and a.verdict == "ok"


def test_within_run_spread_is_a_floor_on_the_noise():
    wobbly = list(np.linspace(0.7, 1.3, 100))  # IQR / median = 0.3
    assert within_run_noise(wobbly) == pytest.approx(0.3, rel=0.02)
    a = assess(1.2, wobbly, [_row(1.0)], threshold_pct=10)
    assert a.verdict == "ok" and a.noise == pytest.approx(0.3, rel=0.02)
    assert assess(1.2, [1.2] * 50, [_row(1.0)], threshold_pct=10).verdict == "suspect"


def test_a_busier_machine_slows_the_reference_too_and_is_not_a_regression():
    base = [{**_row(10.0), "ref_p50": 1.0}, {**_row(10.2), "ref_p50": 1.01}]
    busy = assess(15.0, None, base, threshold_pct=10, current_ref=1.5)  # everything 50 % slower
    assert busy.verdict == "machine-noise" and busy.relative_change == pytest.approx(0.0, abs=0.02)
    assert "the machine, not the model" in busy.notes[0]
    slower_model = assess(15.0, None, base, threshold_pct=10, current_ref=1.0)  # only the model
    assert slower_model.verdict == "suspect" and slower_model.relative_change == pytest.approx(0.49, abs=0.02)
    old_rows = assess(15.0, None, [_row(10.0), _row(10.2)], threshold_pct=10, current_ref=1.5)
    assert old_rows.verdict == "suspect"  # rows without a reference: the raw rule alone


def test_thread_change_is_reported(tmp_path):
    a = assess(2.0, None, [_row(1.0, threads=2)], threshold_pct=10, current_threads=1)
    assert "threads changed: 2 -> 1" in a.notes


def test_history_keeps_rows_per_key_and_machine(tmp_path):
    h = History(tmp_path / "h.sqlite")
    common = {"suite": "s", "session": "x", "created": "now", "model_sha": "a", "backend": "ort-cpu", "batch": 1,
              "threads": 2, "p50": 1.0, "raw_ms": [1.0, 1.1]}
    for i in range(7):
        h.add({**common, "name": "m", "machine_fp": "M1", "p50": float(i)})
    h.add({**common, "name": "m", "machine_fp": "M2", "p50": 99.0})
    h.add({**common, "name": "m", "machine_fp": "M1", "p50": 50.0, "rerun": 1})
    recent = h.recent("m", "ort-cpu", 1, "M1", limit=5)
    assert [r["p50"] for r in recent] == [2.0, 3.0, 4.0, 5.0, 6.0]  # oldest first, re-runs and other machines out
    assert h.count() == 9
    h.close()
    assert History(tmp_path / "h.sqlite").count() == 9  # persisted
