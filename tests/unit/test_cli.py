"""The command line as a user meets it: exit codes, messages with field paths, no tracebacks."""

import subprocess
import sys

import yaml

from edgetl.testing.recipes import tiny_vision_recipe


def edgetl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgetl", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_accepts_the_quickstarts(repo_root):
    for name in ("quickstart-vision.yaml", "quickstart-text.yaml"):
        result = edgetl("validate", str(repo_root / "recipes" / name))
        assert result.returncode == 0, result.stderr
        assert "ok" in result.stdout


def test_validate_of_a_lora_recipe_prints_no_library_noise(repo_root):
    # checking LoRA targets imports peft -> torchao, which warns per missing CUDA kernel library on CPU installs
    result = edgetl("validate", str(repo_root / "recipes" / "text-lora.yaml"))
    assert result.returncode == 0, result.stderr
    assert "Failed to load" not in result.stderr and "_pytree" not in result.stderr, result.stderr


def test_validate_names_a_misspelt_stage_key_and_exits_2(tmp_path):
    data = tiny_vision_recipe()
    data["stages"][1]["epochz"] = 2
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = edgetl("validate", str(path))
    assert result.returncode == 2
    assert "stages.1.epochz" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_vision_recipe(model={"source": "resnet_9000"})))
    result = edgetl("validate", str(path))
    assert result.returncode == 2
    assert "model.source" in result.stderr and "resnet_9000" in result.stderr and "mobilenet_v2" in result.stderr


def test_compress_of_a_missing_recipe_exits_2(tmp_path):
    result = edgetl("compress", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "o").exists()


def test_set_override_is_applied_before_validation(tmp_path, repo_root):
    result = edgetl("validate", str(repo_root / "recipes/quickstart-vision.yaml"), "--set", "stages.0.epochs=-1")
    assert result.returncode == 2 and "stages.0.epochs" in result.stderr


def test_schema_writes_json_schema(tmp_path):
    out = tmp_path / "schema.json"
    assert edgetl("schema", "--out", str(out)).returncode == 0
    assert '"stages"' in out.read_text()


def test_compress_with_a_relative_out_dir_leaves_only_the_run_folder(tmp_path):
    data = tiny_vision_recipe(data={"name": "fashion_mnist", "train_limit": 200, "eval_limit": 100})
    data["stages"][0]["max_steps"] = 3
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    result = edgetl("compress", "r.yaml", "--out", "out", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.yaml"]  # no scratch files from ONNX Runtime
    assert (tmp_path / "out" / "report.json").exists()
