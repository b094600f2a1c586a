"""Without TensorRT or a GPU, everything that needs them stops early with what to install (exit code 2)."""

import subprocess
import sys
import time

import pytest
import yaml

from edgetl.errors import BackendUnavailableError
from edgetl.trt.device import static_problem

pytestmark = pytest.mark.skipif(static_problem() is None, reason="TensorRT and a GPU are present here")

RECIPE = {
    "name": "needs-trt",
    "model": {"source": "tiny_cnn", "input_size": 32},
    "data": {"name": "fashion_mnist", "train_limit": 100, "eval_limit": 50},
    "stages": [{"type": "finetune", "epochs": 1}, {"type": "export"}, {"type": "quantize", "samples": 16},
               {"type": "build_engine"}, {"type": "bundle"}],
}


def _edgetl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_stops_a_recipe_with_build_engine_before_training_with_the_install_hint(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    start = time.perf_counter()
    result = _edgetl("validate", str(recipe))
    assert result.returncode == 2
    err = " ".join(result.stderr.split())
    assert "stages.3.type: build_engine needs tensorrt" in err
    assert "pip install 'edgetl[trt]'" in err and "edgetl[jetson]" in err  # brackets survive the console
    assert time.perf_counter() - start < 20


def test_compress_refuses_the_same_recipe_before_any_stage_runs(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    result = _edgetl("compress", str(recipe), "--out", str(tmp_path / "run"), "-q")
    assert result.returncode == 2 and "build_engine needs tensorrt" in " ".join(result.stderr.split())
    assert not (tmp_path / "run" / "stages").exists() or not any((tmp_path / "run" / "stages").iterdir())


def test_build_engine_command_exits_2_with_the_hint(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx")
    result = _edgetl("build-engine", str(onnx))
    assert result.returncode == 2
    assert "TensorRT cannot run here" in result.stderr and "edgetl[trt]" in result.stderr
    missing = _edgetl("build-engine", str(tmp_path / "nope.onnx"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = _edgetl("build-engine", str(onnx), "--shapes", "batch=8:1:2")
    assert bad.returncode == 2 and "min <= opt <= max" in bad.stderr


def test_tensorrt_benchmark_backend_reports_itself_unavailable():
    from edgetl.registry import BACKENDS

    entry = BACKENDS.get("tensorrt")
    if entry.missing():
        assert "edgetl[trt]" in entry.install_hint()
    else:
        with pytest.raises(BackendUnavailableError):
            entry.load()().check_available()
