"""The runner on a tiny CNN and real Fashion-MNIST: every stage, caching, reruns, atomic stage folders."""

import json

import pytest

from edgetl.errors import ExportError, RecipeError
from edgetl.pipeline.runner import compress, validate
from edgetl.recipe.load import parse_recipe
from edgetl.runtime.files import sha256_file
from edgetl.testing.recipes import tiny_vision_recipe


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    report = compress(parse_recipe(tiny_vision_recipe()), out)
    return out, report


def test_all_four_stages_produce_a_report_with_the_contract_keys(tiny_run):
    out, report = tiny_run
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["baseline"] == "onnx_fp32" and on_disk["final"] == "onnx_int8"
    for art in on_disk["artifacts"]:
        assert {"name", "stage", "format", "precision", "size_bytes", "accuracy", "latency_ms"} <= set(art)
    onnx = {a["name"]: a for a in on_disk["artifacts"] if a["format"] == "onnx"}
    for a in onnx.values():
        assert {"p50", "p90", "p99"} <= set(a["latency_ms"])
        assert a["accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert onnx["onnx_int8"]["size_bytes"] < 0.8 * onnx["onnx_fp32"]["size_bytes"]  # scales and zero points weigh a lot on 6k params
    assert abs(onnx["onnx_int8"]["accuracy"] - onnx["onnx_fp32"]["accuracy"]) < 0.05
    assert (out / "report.md").read_text().startswith("# edgetl report")
    assert (out / "report.png").stat().st_size > 1000


def test_manifest_hashes_match_the_files_and_records_lineage(tiny_run):
    out, _ = tiny_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == "tiny-vision"
    assert manifest["environment"]["libraries"]["onnxruntime"]
    for f in manifest["files"]:
        assert sha256_file(out / f["path"]) == f["sha256"]
    lineage = {a["name"]: a["lineage"] for a in manifest["artifacts"]}
    assert lineage["onnx_int8"] == ["onnx_int8", "onnx_fp32", "finetuned"]
    opset = next(a for a in manifest["artifacts"] if a["name"] == "onnx_fp32")["info"]["opset"]
    assert opset == 17


def test_rerun_reuses_every_stage_and_a_changed_stage_reruns_only_what_follows(tiny_run):
    out, _ = tiny_run
    again = compress(parse_recipe(tiny_vision_recipe()), out)
    assert [s["status"] for s in again["stages"]] == ["reused"] * 4
    changed = tiny_vision_recipe()
    changed["stages"][2]["calibration"] = "percentile"
    report = compress(parse_recipe(changed), out)
    assert [s["status"] for s in report["stages"]] == ["reused", "reused", "ran", "ran"]


def test_a_failing_stage_leaves_no_partial_folder_and_keeps_finished_ones(tiny_run):
    out, _ = tiny_run
    before = sorted(p.name for p in (out / "stages").iterdir())
    bad = tiny_vision_recipe()
    bad["stages"][1]["parity_atol"] = 1e-12  # no float export matches torch to 1e-12
    with pytest.raises(ExportError, match="disagrees"):
        compress(parse_recipe(bad), out)
    after = sorted(p.name for p in (out / "stages").iterdir())
    assert after == before
    assert not any(name.startswith(".tmp") for name in after)


def test_stage_order_is_checked_before_anything_runs(tmp_path):
    recipe = tiny_vision_recipe()
    recipe["stages"] = [{"type": "quantize"}, {"type": "benchmark"}]
    with pytest.raises(RecipeError) as err:
        validate(parse_recipe(recipe))
    assert any(p.startswith("stages.0.type:") and "export" in p for p in err.value.problems)
    assert not any(tmp_path.iterdir())


def test_duplicate_artifact_names_are_rejected():
    recipe = tiny_vision_recipe()
    recipe["stages"].insert(2, {"type": "export"})
    with pytest.raises(RecipeError) as err:
        validate(parse_recipe(recipe))
    assert any(p.startswith("stages.2.name:") for p in err.value.problems)
