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


def _compress(recipe: dict, tmp_path, *extra: str):
    from typer.testing import CliRunner

    from edgetl.cli import app

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["compress", str(path), "--out", str(tmp_path / "run"), "-q", *extra])
    return res, " ".join(res.output.split())


SHORT = {"name": "short", "seed": 0, "model": {"source": "tiny_cnn", "input_size": 32},
         "data": {"name": "fashion_mnist", "train_limit": 128, "eval_limit": 64},
         "stages": [{"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02, "max_steps": 2}]}


def test_compress_exits_1_when_a_target_fails_unless_told_not_to(tmp_path):
    recipe = {**SHORT, "targets": {"min_accuracy": 0.999}}

    failed, text = _compress(recipe, tmp_path)
    kept, _ = _compress(recipe, tmp_path, "--no-fail-on-targets")

    assert failed.exit_code == 1, text
    assert "one or more targets failed" in text
    assert kept.exit_code == 0


def test_diverged_training_exits_3_keeps_earlier_stages_and_nothing_of_its_own(tmp_path):
    recipe = {**SHORT, "stages": [
        SHORT["stages"][0],
        {"type": "finetune", "name": "diverged", "epochs": 2, "batch_size": 32, "lr": 0.01,
         "lr_groups": {"head": 1e9}},  # an absurd learning rate on the head
        {"type": "export"},
    ]}

    res, text = _compress(recipe, tmp_path)

    assert res.exit_code == 3, text
    assert "stage 1 (finetune): finetune full: training diverged at epoch 1, step" in text
    assert [p.name[:12] for p in (tmp_path / "run" / "stages").iterdir()] == ["00-finetune-"]
    assert "Traceback" not in text and not (tmp_path / "run" / "report.json").exists()


def test_bad_bytes_and_bad_set_values_exit_2_naming_the_file_or_override(tmp_path, repo_root):
    path = tmp_path / "r.yaml"
    path.write_bytes(yaml.safe_dump(tiny_vision_recipe()).encode() + b"# caf\xe9\n")
    result = edgetl("validate", str(path), "--set", "stages.0.epochs=[")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "r.yaml is not UTF-8 text: byte" in result.stderr
    result = edgetl("validate", str(repo_root / "recipes/quickstart-vision.yaml"), "--set", "stages.0.epochs=[")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--set stages.0.epochs=[: the value is not valid YAML" in result.stderr


def test_validate_warns_when_trust_remote_code_is_on(repo_root):
    result = edgetl("validate", str(repo_root / "recipes/quickstart-text.yaml"), "--set", "model.source=hf:owner/name",
                    "--set", "model.trust_remote_code=true")
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr  # (log records go to the console's stdout)
    assert "WARNING" in shown and "trust_remote_code is on" in shown
