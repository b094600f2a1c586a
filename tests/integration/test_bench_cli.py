"""`edgetl bench` and the pipeline's `benchmark` stage end to end on a tiny CNN exported by edgetl and real
Fashion-MNIST: one implementation, readable table, JSON with fingerprint / percentiles / raw timings, errors
exit 2."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-run")
    recipe = {
        "name": "tiny-bench", "seed": 0,
        "model": {"source": "tiny_cnn", "input_size": 32, "pretrained": False},
        "data": {"name": "fashion_mnist", "train_limit": 200, "eval_limit": 200},
        "stages": [{"type": "export"}, {"type": "quantize", "samples": 32},
                   {"type": "benchmark", "iterations": 20, "warmup_seconds": 0.02, "throughput_batches": [4]}],
    }
    report = compress(parse_recipe(recipe), out)
    return out, report


def run_cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_stage_results_keep_the_report_contract_and_add_the_sweep(tiny_run):
    out, report = tiny_run
    arts = {a["name"]: a for a in report["artifacts"] if a["format"] == "onnx"}
    assert set(arts) == {"onnx_fp32", "onnx_int8"}
    for a in arts.values():
        assert a["latency_ms"]["p50"] > 0 and a["latency_backend"] == "ort-cpu" and a["threads"] == 2
        assert a["batch_size"] == 1 and 0 <= a["accuracy"] <= 1
        assert "200 eval examples" in a["accuracy_source"]
    stage_dir = next((out / "stages").glob("*-benchmark-*"))
    results = json.loads(next(stage_dir.glob("*.json")).read_text())
    results = results.get("metrics", results)["results"]
    assert [t["batch_size"] for t in results["onnx_int8"]["throughput"]] == [1, 4]
    assert len(results["onnx_int8"]["raw_ms"]) >= 20


def test_bench_an_onnx_file_prints_a_table_and_writes_json(tiny_run, tmp_path):
    out, report = tiny_run
    onnx = out / next(a["path"] for a in report["artifacts"] if a["name"] == "onnx_int8")
    js = tmp_path / "r.json"
    res = run_cli("bench", str(onnx), "--batch", "1,4", "-n", "30", "--warmup", "0.02", "--threads", "1",
                  "--data", "fashion_mnist", "--eval-limit", "200", "--json", str(js))
    assert res.exit_code == 0, res.output
    assert "p50" in res.output and "ort-cpu" in res.output
    data = json.loads(js.read_text())
    (row,) = data["results"]
    assert data["environment"]["cpu"] and data["machine_fingerprint"] and row["fingerprint"]
    assert len(row["raw_ms"]) == row["latency_ms"]["n"] >= 30
    assert data["latency_input"] == "real eval examples"
    # accuracy of the file itself on the same 200 examples the pipeline used
    int8 = next(a for a in report["artifacts"] if a["name"] == "onnx_int8")
    assert row["accuracy"] == pytest.approx(int8["accuracy"]) and row["eval_samples"] == 200
    assert row["macs"] > 0 and row["params"] > 0


def test_bench_a_run_folder_compares_torch_and_onnx_side_by_side(tmp_path, tiny_run):
    out, _ = tiny_run
    js = tmp_path / "run.json"
    res = run_cli("bench", str(out), "-b", "ort-cpu,torch", "-n", "20", "--warmup", "0.02", "--json", str(js))
    assert res.exit_code == 0, res.output
    rows = json.loads(js.read_text())["results"]
    status = {(r["model"], r["backend"]): r["status"] for r in rows}
    assert status[("onnx_fp32", "ort-cpu")] == "ok" and status[("onnx_fp32", "torch")] == "unsupported"
    assert "unsupported" in res.output  # shown in the table, not dropped


def test_bench_torch_backend_on_a_saved_model_folder(tmp_path):
    import torch

    from edgetl.models.base import EdgeModel, save_model
    from edgetl.runtime.preprocess import Preprocessing
    from edgetl.testing.tiny import TinyCNN

    torch.manual_seed(0)
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=32)
    model = EdgeModel(TinyCNN(10), "image", pre, [str(i) for i in range(10)], {"kind": "zoo", "name": "tiny_cnn",
                                                                                 "num_labels": 10}, "tiny_cnn")
    save_model(model, tmp_path / "model")
    js = tmp_path / "t.json"
    res = run_cli("bench", str(tmp_path / "model"), "-n", "20", "--warmup", "0.02", "--json", str(js))
    assert res.exit_code == 0, res.output
    (row,) = json.loads(js.read_text())["results"]
    assert row["backend"] == "torch" and row["format"] == "pytorch" and row["latency_ms"]["p50"] > 0
    assert row["macs"] > 0 and row["params"] == sum(p.numel() for p in model.module.parameters())


@pytest.mark.parametrize("args, message", [
    (["bench", "missing.onnx"], "does not exist"),
    (["bench", "{onnx}", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["bench", "{onnx}", "--backend", "ort-cuda"], "onnxruntime-gpu"),
    (["bench", "{onnx}", "--batch", "1,x"], "--batch"),
    (["bench", "{onnx}", "--data", "imagenet"], "neither a named dataset"),
])
def test_user_mistakes_exit_2_with_a_clear_message(tiny_run, args, message):
    out, report = tiny_run
    onnx = str(out / next(a["path"] for a in report["artifacts"] if a["name"] == "onnx_fp32"))
    res = run_cli(*[a.replace("{onnx}", onnx) for a in args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_the_installed_command_exits_2_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "edgetl", "bench", "missing.onnx"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_validate_rejects_a_benchmark_backend_this_machine_cannot_run():
    from edgetl.errors import RecipeError
    from edgetl.pipeline.runner import validate

    recipe = parse_recipe({
        "name": "gpu-bench", "model": {"source": "tiny_cnn", "input_size": 32},
        "data": {"name": "fashion_mnist", "train_limit": 100, "eval_limit": 100},
        "stages": [{"type": "export"}, {"type": "benchmark", "backend": "ort-cuda"}],
    })
    with pytest.raises(RecipeError) as exc:
        validate(recipe)
    text = exc.value.render()
    assert "stages.1.backend" in text and "onnxruntime-gpu" in text


def test_fp32_and_int8_model_onnx_files_keep_their_own_rows(tiny_run, tmp_path):
    out, report = tiny_run
    arts = {a["name"]: a for a in report["artifacts"] if a["format"] == "onnx"}
    js = tmp_path / "two.json"
    res = run_cli("bench", str(out / arts["onnx_fp32"]["path"]), str(out / arts["onnx_int8"]["path"]), "-n", "30",
                  "--warmup", "0.02", "--threads", "1", "--data", "fashion_mnist", "--eval-limit", "200",
                  "--json", str(js))
    assert res.exit_code == 0, res.output
    fp32, int8 = json.loads(js.read_text())["results"]
    # both files are onnx/model.onnx: the names carry their stage folders
    assert fp32["model"].endswith("/onnx/model.onnx") and "-export-" in fp32["model"]
    assert int8["model"].endswith("/onnx/model.onnx") and "-quantize-" in int8["model"]
    assert fp32["sha256"] != int8["sha256"] and fp32["raw_ms"] != int8["raw_ms"]
    assert fp32["accuracy"] == pytest.approx(arts["onnx_fp32"]["accuracy"])
    assert int8["accuracy"] == pytest.approx(arts["onnx_int8"]["accuracy"])


def test_peak_memory_is_the_benchmark_process_own_after_exec(tiny_run, tmp_path):
    """A parent that touched 1.5 GB and exec'd `edgetl bench`: getrusage's maximum would carry the 1.5 GB over."""
    out, report = tiny_run
    onnx = out / next(a["path"] for a in report["artifacts"] if a["name"] == "onnx_fp32")
    js = tmp_path / "mem.json"
    script = ("import os, sys\nballast = b'\\x01' * (1536 << 20)  # written, so resident\n"
              f"os.execv(sys.executable, [sys.executable, '-m', 'edgetl', 'bench', {str(onnx)!r}, '-n', '10', "
              f"'--warmup', '0.02', '--threads', '1', '--json', {str(js)!r}])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(js.read_text())
    assert 10 < data["peak_rss_mb"] < 1000, data["peak_rss_source"]
    assert data["results"][0]["memory"]["peak_rss_mb"] == data["peak_rss_mb"]


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes)"),
    (b"\x08\x07garbage that is not ONNX", "not a readable ONNX model"),
    ("half", "corrupt or truncated"),
])
@pytest.mark.parametrize("command", ["bench", "check-qdq"])
def test_a_broken_onnx_file_exits_2_naming_it(tiny_run, tmp_path, content, message, command):
    out, report = tiny_run
    good = (out / next(a["path"] for a in report["artifacts"] if a["name"] == "onnx_fp32")).read_bytes()
    bad = tmp_path / "model.onnx"
    bad.write_bytes(good[: len(good) // 2] if content == "half" else content)
    res = run_cli(command, str(bad))
    assert res.exit_code == 2, res.output
    assert str(bad) in res.output and message in res.output


def test_a_truncated_image_in_the_eval_folder_exits_2_naming_it(tiny_run, tmp_path):
    import numpy as np
    from PIL import Image

    out, report = tiny_run
    onnx = out / next(a["path"] for a in report["artifacts"] if a["name"] == "onnx_fp32")
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.jpg")
    bad = tmp_path / "b" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:50])
    res = run_cli("bench", str(onnx), "--data", str(tmp_path), "-n", "5")
    assert res.exit_code == 2, res.output
    assert str(bad) in res.output and "cannot be decoded" in res.output
