"""`edgetl bench-suite`: history, A/A without a regression, a slowed model under the same name caught as a
confirmed regression (exit 1), unavailable backends listed, Markdown/HTML report with trend PNGs."""

import json
import shutil

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgetl.bench.history import History
from edgetl.cli import app
from edgetl.errors import RecipeError
from edgetl.pipeline.suite import load_suite, run_suite


def mlp(path, width, depth):
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]), helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        prev = f"r{i}"
    model = helper.make_model(
        helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", width])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture
def suite(tmp_path):
    mlp(tmp_path / "fast.onnx", 512, 3)
    mlp(tmp_path / "slow.onnx", 512, 18)  # 6x the work
    shutil.copy(tmp_path / "fast.onnx", tmp_path / "model.onnx")
    cfg = {"name": "t", "threads": 1, "iterations": 150, "warmup_seconds": 0.05, "batches": [1],
           "backends": ["ort-cpu", "ort-cuda"], "report_dir": "report",
           "regression": {"threshold_pct": 10, "window": 5, "rerun": True},
           "models": [{"name": "mlp", "path": "model.onnx"}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_aa_then_slowed_model_is_a_confirmed_regression(suite, tmp_path):
    hist = tmp_path / "h.sqlite"
    first = run_suite(load_suite(suite), hist)
    assert [c["verdict"] for c in first["checks"]] == ["no-history"]
    second = run_suite(load_suite(suite), hist)  # A/A: nothing changed
    assert second["regressions"] == []
    # A busier machine slows the reference workload too: that is "machine-noise", still no regression.
    assert second["checks"][0]["verdict"] in ("ok", "faster", "machine-noise", "unconfirmed")
    assert second["unavailable"][0]["backend"] == "ort-cuda" and "onnxruntime-gpu" in second["unavailable"][0]["hint"]

    shutil.copy(tmp_path / "slow.onnx", tmp_path / "model.onnx")  # same name, slower model
    res = CliRunner().invoke(app, ["bench-suite", str(suite), "--history", str(hist)], catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "REGRESSION" in res.output and "model changed: sha" in res.output
    out = json.loads((tmp_path / "report" / "suite-result.json").read_text())
    (reg,) = out["regressions"]
    assert reg["change"] > 1.0 and reg["rerun_change"] > 1.0  # measured slower twice
    rows = History(hist).series("mlp", "ort-cpu", 1, out["checks"][0]["machine_fp"])
    primary = [r for r in rows if not r["rerun"]]
    assert len(primary) == 3 and primary[-1]["verdict"] == "regression"
    assert rows[-1]["rerun"] == 1 and rows[-1]["verdict"] == "regression"  # the confirming re-run is kept too
    md = (tmp_path / "report" / "report.md").read_text()
    assert "**regression" in md and "ort-cuda" in md and "trend-mlp-ort-cpu-b1.png" in md
    assert (tmp_path / "report" / "trend-mlp-ort-cpu-b1.png").stat().st_size > 5000
    assert "<table>" in (tmp_path / "report" / "report.html").read_text()


def test_a_faster_model_is_reported_as_faster_not_as_a_regression(suite, tmp_path):
    hist = tmp_path / "h.sqlite"
    shutil.copy(tmp_path / "slow.onnx", tmp_path / "model.onnx")
    run_suite(load_suite(suite), hist)
    shutil.copy(tmp_path / "fast.onnx", tmp_path / "model.onnx")
    res = run_suite(load_suite(suite), hist)
    assert res["checks"][0]["verdict"] == "faster" and res["regressions"] == []
    assert res["checks"][0]["change"] < -0.5


def test_bad_suite_files_are_user_errors(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_suite(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "models": [{"name": "m", "run": "runs/x"}], "colour": 1}))
    with pytest.raises(RecipeError) as exc:
        load_suite(bad)
    text = exc.value.render()
    assert "colour" in text and "artifact" in text
