"""The shared benchmark runner on small hand-built ONNX graphs in ONNX Runtime (no mocks)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetl.bench.runner import BenchOptions, run_benchmark, target_from_path
from edgetl.errors import BackendUnavailableError, BenchmarkError, RecipeError

FAST = {"iterations": 40, "warmup_seconds": 0.02, "chunk": 10, "power": False}


def test_result_has_fingerprint_percentiles_raw_timings_and_sweep(make_mlp):
    path = make_mlp(width=64, depth=2)
    res = run_benchmark(target_from_path(path), BenchOptions(batches=[1, 4], threads=1, **FAST))
    assert res["machine_fingerprint"] and res["environment"]["cpu"] and res["environment"]["libraries"]["onnxruntime"]
    (row,) = res["results"]
    assert row["status"] == "ok" and row["backend"] == "ort-cpu" and row["threads"] == 1
    assert len(row["fingerprint"]) == 16 and len(row["sha256"]) == 64
    lat = row["latency_ms"]
    assert {"p50", "p90", "p95", "p99", "max", "mean", "cov", "noisy", "n"} <= set(lat)
    assert lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert len(row["raw_ms"]) == lat["n"] >= 40 and row["warmup_iterations"] >= 5
    assert [t["batch_size"] for t in row["throughput"]] == [1, 4]
    assert all(t["samples_per_s"] > 0 for t in row["throughput"])
    assert row["input_shapes"] == {"x": [1, 64]}
    assert row["params"] == 2 * 64 * 64 + 64 * 10 and row["macs"] == row["params"]
    assert row["memory"]["peak_rss_mb"] > 10 and row["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert res["latency_input"] == "seeded random tensors"


def test_a_bigger_model_measures_slower_in_the_same_run(make_mlp):
    small = target_from_path(make_mlp("small.onnx", width=32, depth=1))
    big = target_from_path(make_mlp("big.onnx", width=512, depth=6))
    res = run_benchmark(small + big, BenchOptions(threads=1, **FAST))
    p50 = {r["model"]: r["latency_ms"]["p50"] for r in res["results"]}
    assert p50["big"] > 3 * p50["small"]


def test_unavailable_backend_is_reported_with_how_to_get_it_never_skipped(mlp):
    res = run_benchmark(target_from_path(mlp), BenchOptions(backends=["ort-cpu", "ort-cuda", "torch"], threads=1, **FAST))
    rows = {r["backend"]: r for r in res["results"]}
    assert set(rows) == {"ort-cpu", "ort-cuda", "torch"}
    assert rows["ort-cpu"]["status"] == "ok"
    assert rows["ort-cuda"]["status"] == "unavailable"
    assert "CUDAExecutionProvider" in rows["ort-cuda"]["reason"] and "onnxruntime-gpu" in rows["ort-cuda"]["hint"]
    assert rows["torch"]["status"] == "unsupported" and "--backend ort-cpu" in rows["torch"]["hint"]


def test_nothing_runnable_is_an_error_with_the_reasons(mlp):
    with pytest.raises(BackendUnavailableError) as exc:
        run_benchmark(target_from_path(mlp), BenchOptions(backends=["ort-cuda"], **FAST))
    assert "ort-cuda" in exc.value.render() and "onnxruntime-gpu" in exc.value.render()


def test_unknown_backend_and_missing_file_are_user_errors(mlp, tmp_path):
    with pytest.raises(RecipeError, match="expected one of"):
        run_benchmark(target_from_path(mlp), BenchOptions(backends=["tpu"], **FAST))
    with pytest.raises(BenchmarkError, match="does not exist"):
        target_from_path(tmp_path / "nope.onnx")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchmarkError, match="not a model"):
        target_from_path(tmp_path / "notes.txt")


def test_dynamic_feature_dimension_needs_a_shape(make_mlp):
    path = make_mlp("dyn.onnx", width=16, depth=1, dynamic_features=True)
    with pytest.raises(BenchmarkError) as exc:
        run_benchmark(target_from_path(path), BenchOptions(**FAST))
    assert "--shape x=" in exc.value.hint
    res = run_benchmark(target_from_path(path), BenchOptions(shapes={"x": [16]}, batches=[2], **FAST))
    assert res["results"][0]["input_shapes"] == {"x": [2, 16]}


def test_results_are_deterministic_in_everything_but_time(mlp):
    a = run_benchmark(target_from_path(mlp), BenchOptions(**FAST))["results"][0]
    b = run_benchmark(target_from_path(mlp), BenchOptions(**FAST))["results"][0]
    for key in ("sha256", "fingerprint", "params", "macs", "input_shapes", "size_bytes"):
        assert a[key] == b[key]
    assert not np.array_equal(a["raw_ms"], b["raw_ms"])  # real timings, not replayed numbers


def test_power_on_a_jetson_comes_from_tegrastats_during_the_loop(mlp, tmp_path, monkeypatch):
    # a `tegrastats` on PATH that prints JetPack 6 Orin Nano lines every --interval ms, as the real one does
    lines = (Path(__file__).parent / "data" / "tegrastats_jp6_orin_nano.txt").read_text().splitlines()
    exe = tmp_path / "bin" / "tegrastats"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\nimport sys, time\nlines = {lines!r}\n"
                   "ms = int(sys.argv[sys.argv.index('--interval') + 1])\ni = 0\n"
                   "while True:\n    print(lines[i % len(lines)], flush=True); i += 1; time.sleep(ms / 1000)\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    opts = BenchOptions(threads=1, iterations=20, warmup_seconds=0.02, chunk=10, power=True, power_seconds=0.6)
    power = run_benchmark(target_from_path(mlp), opts)["results"][0]["power"]
    assert power["available"] and power["samples"] >= 2 and power["rule"] == "VDD_IN"
    assert 3913 <= power["mean_mw"] <= 9821
    assert power["mj_per_inference"] == pytest.approx(power["mean_mw"] * power["seconds"] / power["inferences"])
    assert power["inferences"] > 10 and "idle_mw" in power


def test_no_tegrastats_means_power_unavailable_with_the_reason(mlp, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("edgetl.bench.tegrastats.shutil.which", lambda name: None)
    power = run_benchmark(target_from_path(mlp), BenchOptions(**{**FAST, "power": True}))["results"][0]["power"]
    assert power == {"available": False, "reason": "tegrastats not found (not a Jetson)"}


def test_two_files_called_model_onnx_keep_their_own_names_and_timings(tmp_path, make_mlp):
    for stage in ("01-export-abc", "02-quantize-def"):
        (tmp_path / stage / "onnx").mkdir(parents=True)
    small = make_mlp("01-export-abc/onnx/model.onnx", width=32, depth=1)
    big = make_mlp("02-quantize-def/onnx/model.onnx", width=512, depth=6)
    res = run_benchmark(target_from_path(small) + target_from_path(big), BenchOptions(threads=1, **FAST))
    rows = {r["model"]: r for r in res["results"]}
    assert set(rows) == {"01-export-abc/onnx/model.onnx", "02-quantize-def/onnx/model.onnx"}
    fast, slow = rows["01-export-abc/onnx/model.onnx"], rows["02-quantize-def/onnx/model.onnx"]
    assert fast["path"] == str(small) and slow["path"] == str(big)
    assert fast["raw_ms"] != slow["raw_ms"]
    assert slow["latency_ms"]["p50"] > 3 * fast["latency_ms"]["p50"]
    assert slow["params"] > 100 * fast["params"]


def test_the_same_file_twice_is_measured_as_two_numbered_rows(mlp):
    res = run_benchmark(target_from_path(mlp) + target_from_path(mlp), BenchOptions(threads=1, **FAST))
    names = [r["model"] for r in res["results"]]
    assert names == ["mlp", "mlp #2"]
    assert res["results"][0]["raw_ms"] != res["results"][1]["raw_ms"]


def test_peak_memory_is_this_process_high_water_mark(mlp):
    res = run_benchmark(target_from_path(mlp), BenchOptions(threads=1, **FAST))
    row = res["results"][0]
    if sys.platform.startswith("linux"):
        assert res["peak_rss_source"].startswith("VmHWM")
    assert row["memory"]["peak_rss_mb"] == res["peak_rss_mb"] >= row["memory"]["rss_after_load_mb"] * 0.9


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes)"),
    (b"this is not a protobuf \xff\xfe", "not a readable ONNX model"),
    ("truncated", "corrupt or truncated"),
])
def test_a_broken_onnx_file_is_a_model_error_naming_it(mlp, tmp_path, content, message):
    from edgetl.errors import ModelError

    bad = tmp_path / "broken" / "model.onnx"
    bad.parent.mkdir()
    bad.write_bytes(mlp.read_bytes()[: len(mlp.read_bytes()) // 2] if content == "truncated" else content)
    with pytest.raises(ModelError) as exc:
        run_benchmark(target_from_path(mlp) + target_from_path(bad), BenchOptions(threads=1, **FAST))
    assert str(bad) in str(exc.value) and message in exc.value.render()
