"""Run folders are safe to share and to reuse: one writer at a time, stages keyed by the content of their
inputs, reused results re-checked against their hashes, and a killed run resuming where it stopped."""

import csv
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.pipeline.fingerprint import HashCache, path_fingerprint
from edgetl.pipeline.runner import compress
from edgetl.recipe.load import parse_recipe

FAST = {
    "name": "run-folder",
    "seed": 0,
    "model": {"source": "tiny_cnn", "input_size": 32},
    "data": {"name": "fashion_mnist", "train_limit": 256, "eval_limit": 128},
    "stages": [
        {"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02},
        {"type": "export", "parity_samples": 16},
    ],
}


@pytest.fixture
def runner_log(caplog):
    """Warnings of the runner, also after a CLI call turned propagation to the root logger off."""
    logger = logging.getLogger("edgetl.pipeline.runner")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast")
    compress(parse_recipe(FAST), out)
    return out


def statuses(report):
    return [s["status"] for s in report["stages"]]


def export_dir(out):
    return next((out / "stages").glob("01-export-*"))


def test_a_tampered_artifact_is_detected_and_its_stage_reruns(fast_run, runner_log):
    onnx = export_dir(fast_run) / "onnx" / "model.onnx"
    with open(onnx, "ab") as f:
        f.write(b"\0")

    report = compress(parse_recipe(FAST), fast_run)

    assert statuses(report) == ["reused", "ran"]
    assert "artifact onnx_fp32 changed since it was written" in runner_log.text
    assert statuses(compress(parse_recipe(FAST), fast_run)) == ["reused", "reused"]  # the rebuilt file checks out


def test_a_corrupt_result_json_reruns_its_stage(fast_run, runner_log):
    (export_dir(fast_run) / "result.json").write_text('{"index": 1, "artifacts": [')

    report = compress(parse_recipe(FAST), fast_run)

    assert statuses(report) == ["reused", "ran"]
    assert "result.json is unreadable" in runner_log.text


def test_stale_scratch_of_a_killed_run_is_removed_at_start(fast_run):
    stale = fast_run / "stages" / ".tmp-01-export-0123456789ab"
    stale.mkdir()
    (stale / "half.onnx").write_bytes(b"x")
    (fast_run / ".report.json.tmp4242").write_text("{")

    compress(parse_recipe(FAST), fast_run)

    assert not stale.exists() and not (fast_run / ".report.json.tmp4242").exists()


def test_a_second_compress_on_a_locked_folder_exits_2_naming_the_holder(fast_run, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(FAST))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from edgetl.pipeline.lock import "
         "run_folder_lock\nwith run_folder_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
         str(fast_run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"

        res = CliRunner().invoke(app, ["compress", str(recipe), "--out", str(fast_run), "-q"])

        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert f"is in use by pid {holder.pid} on host {socket.gethostname()}" in text
    finally:
        holder.kill()
        holder.wait()
    assert CliRunner().invoke(app, ["compress", str(recipe), "--out", str(fast_run), "-q"]).exit_code == 0


def test_editing_the_csv_in_place_reruns_the_stages(tmp_path):
    data = tmp_path / "reviews.csv"
    rows = [{"text": f"{word} film number {i}", "label": label}
            for i in range(40) for word, label in (("great", "pos"), ("awful", "neg"))]
    with open(data, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    recipe = {"name": "csv", "seed": 0, "model": {"source": "tiny_bert", "max_length": 16},
              "data": {"name": "csv", "path": str(data)},
              "stages": [{"type": "finetune", "epochs": 1, "batch_size": 16, "max_steps": 2}]}
    out = tmp_path / "run"
    assert statuses(compress(parse_recipe(recipe), out)) == ["ran"]
    assert statuses(compress(parse_recipe(recipe), out)) == ["reused"]

    data.write_text(data.read_text().replace("great film number 3,", "dull film number 3,"))  # same path, new bytes

    assert statuses(compress(parse_recipe(recipe), out)) == ["ran"]


def test_folder_hashes_are_cached_by_size_and_mtime(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"a" * 1000)
    old = time.time() - 60  # older than the window in which a same-size rewrite could keep its mtime
    os.utime(folder / "weights.bin", (old, old))
    cache = HashCache(tmp_path / "hashes.json")
    first = path_fingerprint(folder, cache)
    cache.save()

    (folder / "weights.bin").write_bytes(b"b" * 1000)
    changed = path_fingerprint(folder, HashCache(tmp_path / "hashes.json"))

    assert first["sha256"] != changed["sha256"] and first["files"] == 1
    assert str((folder / "weights.bin").resolve()) in json.loads((tmp_path / "hashes.json").read_text())


KILLABLE = {
    "name": "killable",
    "seed": 0,
    "model": {"source": "tiny_cnn", "input_size": 32},
    "data": {"name": "fashion_mnist", "train_limit": 256, "eval_limit": 128},
    "stages": [
        {"type": "finetune", "epochs": 1, "batch_size": 64, "lr": 0.02, "max_steps": 2},
        {"type": "finetune", "name": "longer", "epochs": 2, "batch_size": 32, "lr": 0.01},
        {"type": "export", "parity_samples": 16},
    ],
}


def test_a_run_killed_during_training_resumes_with_the_same_report(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(KILLABLE))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "compress", str(recipe), "--out", str(killed), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((killed / "stages").glob(".tmp-01-finetune-*")):  # stage 1 is training
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert [p.name[:12] for p in sorted((killed / "stages").iterdir())] == [".tmp-01-fine", "00-finetune-"]

    resumed = compress(parse_recipe(KILLABLE), killed)
    whole = compress(parse_recipe(KILLABLE), tmp_path / "whole")

    assert statuses(resumed) == ["reused", "ran", "ran"]
    assert not list((killed / "stages").glob(".tmp-*"))
    accuracy = {r: [(a["name"], a["accuracy"]) for a in rep["artifacts"]] for r, rep in (("r", resumed), ("w", whole))}
    assert accuracy["r"] == accuracy["w"] and all(acc is not None for _, acc in accuracy["r"][:2])
