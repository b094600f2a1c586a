"""End to end on a real (tiny) run: compress with a `bundle` stage, `edgetl bundle RUN --out DIR`, then the
torch-free runtime reproduces the run's own accuracy from the bundle, and a tampered bundle is refused."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe
from edgetl.runtime import Predictor
from edgetl.runtime.bundle import BundleError, load_bundle
from edgetl.runtime.files import sha256_file
from edgetl.testing.recipes import tiny_vision_recipe


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    recipe = tiny_vision_recipe(name="tiny-bundle")
    recipe["data"].update(train_limit=400, eval_limit=200)
    recipe["stages"] = [
        {"type": "finetune", "epochs": 2, "batch_size": 64, "lr": 0.02},
        {"type": "export", "parity_samples": 16},
        {"type": "quantize", "samples": 32},
        {"type": "quantize", "samples": 32, "target": "tensorrt", "name": "onnx_int8_trt"},
        {"type": "benchmark", "iterations": 10, "warmup_seconds": 0.0},
        {"type": "bundle"},
    ]
    out = tmp_path_factory.mktemp("run")
    report = compress(parse_recipe(recipe), out)
    from edgetl.data.datasets import load_data

    data = load_data(parse_recipe(recipe).data)
    return out, report, data


@pytest.fixture(scope="module")
def cli_bundle(run, tmp_path_factory):
    out_dir, _, _ = run
    dest = tmp_path_factory.mktemp("deploy") / "bundle"
    result = subprocess.run([sys.executable, "-m", "edgetl", "bundle", str(out_dir), "--out", str(dest)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    return dest


def _accuracy(predictor, data):
    preds = predictor.predict_batch(data.eval.inputs)
    return float(np.mean(np.array([p.index for p in preds]) == data.eval.labels))


def test_bundle_holds_the_models_per_layout_and_a_manifest_and_nothing_else(cli_bundle, run):
    files = sorted(p.relative_to(cli_bundle).as_posix() for p in cli_bundle.rglob("*") if p.is_file())
    assert files == ["manifest.json", "models/onnx_fp32/model.onnx", "models/onnx_int8/model.onnx",
                     "models/onnx_int8_trt/model.onnx"]
    manifest = json.loads((cli_bundle / "manifest.json").read_text())
    for rel, meta in manifest["files"].items():
        assert sha256_file(cli_bundle / rel) == meta["sha256"]
    layouts = {m["name"]: m["layout"] for m in manifest["models"]}
    assert layouts == {"onnx_fp32": "any", "onnx_int8": "onnxruntime", "onnx_int8_trt": "tensorrt"}
    assert manifest["defaults"] == {"onnxruntime": "onnx_int8", "tensorrt": "onnx_int8_trt"}


def test_manifest_describes_io_preprocessing_labels_quantization_measurements_and_versions(cli_bundle, run):
    _, report, data = run
    manifest = json.loads((cli_bundle / "manifest.json").read_text())
    measured = {a["name"]: a for a in report["artifacts"]}
    m = {x["name"]: x for x in manifest["models"]}
    assert m["onnx_fp32"]["inputs"] == [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 32, 32]}]
    assert m["onnx_fp32"]["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}]
    assert manifest["preprocessing"]["size"] == 32 and len(manifest["preprocessing"]["mean"]) == 3
    assert manifest["labels"] == data.label_names and manifest["task"] == "image"
    assert m["onnx_fp32"]["quantization"] is None
    trt_q = m["onnx_int8_trt"]["quantization"]
    assert trt_q["layout"] == "tensorrt" and trt_q["activation_type"] == "QInt8" and trt_q["qdq_nodes"] > 0
    for name, entry in m.items():
        assert entry["accuracy"] == measured[name]["accuracy"]
        assert entry["latency_ms"]["p50"] == measured[name]["latency_ms"]["p50"]
        assert entry["source"]["artifact_sha256"] == measured[name]["sha256"]
    assert manifest["libraries"]["onnxruntime"] and manifest["libraries"]["numpy"]
    assert manifest["runtime"]["requires"] == ["numpy", "onnxruntime"]


def test_runtime_predictions_reproduce_the_runs_eval_accuracy_for_every_model(cli_bundle, run):
    _, report, data = run
    measured = {a["name"]: a["accuracy"] for a in report["artifacts"]}
    default = Predictor.from_bundle(cli_bundle, threads=2)
    assert default.model.name == "onnx_int8"
    assert _accuracy(default, data) == pytest.approx(measured["onnx_int8"], abs=1e-9)
    for name in ("onnx_fp32", "onnx_int8_trt"):
        p = Predictor.from_bundle(cli_bundle, model=name, threads=2)
        assert _accuracy(p, data) == pytest.approx(measured[name], abs=1e-9)


def test_the_bundle_stage_writes_the_same_bundle_as_the_command(cli_bundle, run):
    out_dir, report, _ = run
    stage_art = next(a for a in report["artifacts"] if a["name"] == "bundle")
    assert stage_art["format"] == "bundle"
    staged = out_dir / stage_art["path"]
    a = json.loads((staged / "manifest.json").read_text())
    b = json.loads((cli_bundle / "manifest.json").read_text())
    assert a["files"] == b["files"]
    assert a["defaults"] == b["defaults"]
    for x, y in zip(a["models"], b["models"], strict=True):
        assert (x["name"], x["accuracy"], x["latency_ms"]) == (y["name"], y["accuracy"], y["latency_ms"])
    load_bundle(staged)  # verifies


def test_one_changed_byte_is_refused_by_the_runtime(cli_bundle, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(cli_bundle, copy)
    model = copy / "models/onnx_int8/model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 3] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError) as err:
        Predictor.from_bundle(copy)
    assert "models/onnx_int8/model.onnx: sha256 differs" in err.value.problems[0]
    code = f"from edgetl.runtime import Predictor; Predictor.from_bundle({str(copy)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "failed its integrity check" in result.stderr


def test_bundle_command_errors_are_clear(run, tmp_path):
    out_dir, _, _ = run

    def bundle(*args):
        return subprocess.run([sys.executable, "-m", "edgetl", "bundle", *args], capture_output=True, text=True)

    r = bundle(str(tmp_path), "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "not a finished edgetl run" in r.stderr
    r = bundle(str(out_dir), "--out", str(tmp_path / "b"), "--artifact", "nope")
    assert r.returncode == 2 and "no artifact named nope" in r.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    r = bundle(str(out_dir), "--out", str(occupied))
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr and (occupied / "keep.txt").exists()
    r = bundle(str(out_dir), "--out", str(tmp_path / "one"), "--artifact", "onnx_fp32")
    assert r.returncode == 0
    assert [m.name for m in load_bundle(tmp_path / "one").models] == ["onnx_fp32"]


def test_the_robot_loop_example_runs_on_the_bundle_without_torch(cli_bundle, repo_root, tmp_path):
    code = ("import runpy, sys; sys.argv = ['robot_loop.py', %r, '--frames', '5', '--hz', '200'];"
            "\ntry:\n    runpy.run_path(%r, run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(code)")
    example = str(repo_root / "examples" / "robot_loop.py")
    result = subprocess.run([sys.executable, "-c", code % (str(cli_bundle), example)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "5 frames: inference p50" in result.stdout and result.stdout.strip().endswith("NO-TORCH")
    broken = tmp_path / "broken"
    shutil.copytree(cli_bundle, broken)
    (broken / "models/onnx_int8/model.onnx").unlink()
    result = subprocess.run([sys.executable, example, str(broken), "--frames", "1"], capture_output=True, text=True)
    assert result.returncode == 2 and "models/onnx_int8/model.onnx: missing" in result.stderr


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgetl", "bundle", *map(str, args)], capture_output=True, text=True)


def test_a_bundle_signed_by_the_command_loads_with_its_public_key_only(run, cli_bundle, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    out_dir, _, data = run
    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "bundle-key.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    r = _cli(out_dir, "--out", tmp_path / "signed", "--sign", private)
    assert r.returncode == 0, r.stderr
    assert "manifest.sig" in r.stdout
    signed = Predictor.from_bundle(tmp_path / "signed", public_key=public, threads=2)
    unsigned = Predictor.from_bundle(cli_bundle, threads=2)
    frames = data.eval.inputs[:8]
    assert [p.label for p in signed.predict_batch(frames)] == [p.label for p in unsigned.predict_batch(frames)]
    with pytest.raises(BundleError, match="is not signed"):
        Predictor.from_bundle(cli_bundle, public_key=public)


def test_bundle_command_exits_2_naming_a_bad_run_folder_or_key(run, cli_bundle, tmp_path):
    out_dir, _, _ = run
    dest = tmp_path / "b"
    missing_key = tmp_path / "no-such-key.pem"
    r = _cli(out_dir, "--out", dest, "--sign", missing_key)
    assert r.returncode == 2 and f"signing key {missing_key} does not exist" in r.stderr and not dest.exists()
    r = _cli(cli_bundle, "--out", dest)  # a bundle is not a run
    assert r.returncode == 2 and f"{cli_bundle} has no report.json" in r.stderr
    fake = tmp_path / "fake-run"
    fake.mkdir()
    (fake / "manifest.json").write_text("{not json")
    (fake / "report.json").write_text("{}")
    r = _cli(fake, "--out", dest)
    assert r.returncode == 2 and f"{fake / 'manifest.json'} is not valid JSON" in r.stderr
    (fake / "manifest.json").write_text('{"artifacts": [{"name": "x"}]}')
    r = _cli(fake, "--out", dest)
    assert r.returncode == 2 and "has no list of artifacts" in r.stderr
    r = _cli(tmp_path / "nowhere", "--out", dest)
    assert r.returncode == 2 and f"run folder {tmp_path / 'nowhere'} does not exist" in r.stderr
    assert not dest.exists()
