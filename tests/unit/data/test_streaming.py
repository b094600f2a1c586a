"""User data bigger than data.stream_above_mb stays on disk and is read batch by batch, with the same examples,
batches and results as when it is held in memory."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from edgetl.data.datasets import iter_batches, load_data
from edgetl.data.files import CsvTexts, ImageFiles
from edgetl.errors import DataError
from edgetl.recipe.schema import DataConfig


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGETL_CACHE", str(tmp_path / "cache"))


def _age(root):
    """Files as a user's data folder has them: written long before the run (the scan cache trusts only those)."""
    past = time.time() - 3600
    for p in root.rglob("*"):
        os.utime(p, (past, past))


def _fashion_folder(root, per_class=24, classes=3):
    """Fashion-MNIST images as PNG files of two sizes (mixed shapes are resized to one, as in memory)."""
    fm = load_data(DataConfig(name="fashion_mnist", train_limit=per_class * 10))
    for c in range(classes):
        (root / fm.label_names[c].replace("/", "-")).mkdir(parents=True)
        for i, k in enumerate(np.flatnonzero(fm.train.labels == c)[:per_class]):
            image = Image.fromarray(fm.train.inputs[k])
            (image if i % 3 else image.resize((36, 36))).save(root / fm.label_names[c].replace("/", "-") / f"{i}.png")
    _age(root)
    return root


def test_a_folder_over_the_budget_gives_the_same_examples_and_batches_as_in_memory(tmp_path):
    root = _fashion_folder(tmp_path / "imgs")
    held = load_data(DataConfig(name="imagefolder", path=str(root)))
    streamed = load_data(DataConfig(name="imagefolder", path=str(root), stream_above_mb=0, workers=2))
    assert isinstance(held.train.inputs, np.ndarray) and isinstance(streamed.train.inputs, ImageFiles)
    assert streamed.train.inputs.shape == held.train.inputs.shape == (57, 36, 36, 3)
    assert np.array_equal(streamed.eval.labels, held.eval.labels)
    assert np.array_equal(streamed.eval.inputs[3:9], held.eval.inputs[3:9])
    pairs = zip(iter_batches(streamed.train, 8, shuffle=True, seed=4), iter_batches(held.train, 8, shuffle=True, seed=4),
                strict=True)
    for (x_s, y_s), (x_h, y_h) in pairs:
        assert np.array_equal(x_s, x_h) and np.array_equal(y_s, y_h)


def test_training_on_a_streamed_folder_reaches_the_same_accuracy_from_the_same_seed(tmp_path):
    from edgetl.models.zoo import load_source
    from edgetl.recipe.schema import ModelConfig
    from edgetl.train.loop import Trainer, TrainSettings, seed_everything

    root = _fashion_folder(tmp_path / "imgs")
    results = []
    for extra in ({}, {"stream_above_mb": 0, "workers": 2}):
        data = load_data(DataConfig(name="imagefolder", path=str(root), **extra))
        seed_everything(0)  # the same initial weights
        model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", data.label_names)
        settings = TrainSettings(epochs=2, batch_size=12, lr=3e-3, seed=0)
        results.append(Trainer(model, data.train, data.eval, settings).fit())
    held, streamed = results
    assert streamed.best_accuracy == held.best_accuracy and streamed.history == held.history
    assert held.best_accuracy > 0.5  # it learned something: three classes, chance is 0.33


def test_a_corrupt_image_in_a_streamed_folder_is_still_named(tmp_path):
    root = _fashion_folder(tmp_path / "imgs", per_class=140, classes=2)  # enough files to be decoded by a pool
    bad = next((root / "Trouser").iterdir())
    bad.write_bytes(bad.read_bytes()[:40])
    _age(root)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="imagefolder", path=str(root), stream_above_mb=0))
    assert str(bad) in str(err.value) and "skip_corrupt" in err.value.hint
    for _ in range(2):  # the second load reads the cached scan, which remembers the bad file
        data = load_data(DataConfig(name="imagefolder", path=str(root), stream_above_mb=0, skip_corrupt=True))
        assert data.skipped == [str(bad)] and len(data.train) + len(data.eval) == 279
        assert isinstance(data.train.inputs, ImageFiles) and "1 corrupt image(s) skipped" in data.source
    assert len(list((tmp_path / "cache" / "image-scans").glob("*.npz"))) == 1


def test_a_file_changed_after_a_cached_scan_is_scanned_again(tmp_path):
    root = _fashion_folder(tmp_path / "imgs", per_class=10, classes=2)
    cfg = DataConfig(name="imagefolder", path=str(root), stream_above_mb=0)
    load_data(cfg)
    victim = next((root / "Trouser").iterdir())
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DataError, match=str(victim)):
        load_data(cfg)


def test_an_image_replaced_during_the_run_is_named_when_read(tmp_path):
    root = _fashion_folder(tmp_path / "imgs", per_class=10, classes=2)
    data = load_data(DataConfig(name="imagefolder", path=str(root), stream_above_mb=0, workers=2))
    victim = data.train.inputs.paths[0]
    with open(victim, "r+b") as f:
        f.truncate(40)
    with pytest.raises(DataError, match=str(victim)):
        list(iter_batches(data.train, 4))  # decoded in a worker process, raised here with the file's name


def test_loading_a_folder_over_the_budget_keeps_memory_far_below_its_decoded_size(tmp_path):
    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(60):  # 120 images of 640x480: 110 MB decoded, 2 MB as JPEG
            base = np.kron(rng.integers(0, 255, (15, 20, 3), dtype=np.uint8), np.ones((32, 32, 1), np.uint8))
            Image.fromarray(base).save(root / c / f"{i}.jpg", quality=80)
    script = textwrap.dedent(f"""
        import sys
        import torch  # the DataLoader's own memory is not the data's
        from edgetl.data.datasets import iter_batches, load_data
        from edgetl.recipe.schema import DataConfig

        def peak_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

        before = peak_mb()
        data = load_data(DataConfig(name="imagefolder", path={str(root)!r}, stream_above_mb=int(sys.argv[1])))
        n = sum(len(y) for _, y in iter_batches(data.train, 4, shuffle=True))
        print(n, round(peak_mb() - before))
    """)
    growth = {}
    for budget in (20, 1024):
        out = subprocess.run([sys.executable, "-c", script, str(budget)], capture_output=True, text=True, check=True)
        n, growth[budget] = map(int, out.stdout.split())
        assert n == 96  # a full pass over the training split
    assert growth[20] < 40, growth  # streamed: the few batches decoded ahead
    assert growth[1024] > 100, growth  # held in memory: the whole folder decoded


def test_a_csv_over_the_budget_reads_the_same_texts_from_the_file(tmp_path):
    path = tmp_path / "r.csv"
    rows = [f"text {i} é,{'pos' if i % 2 else 'neg'}" for i in range(30)]
    rows[4] = '"a text, with a comma\nand a second line",pos'
    rows[7] = '"quoted ""words"" here",neg'
    body = "text,label\r\n" + "\r\n".join(rows[:10]) + "\r\n\r\n" + "\r\n".join(rows[10:]) + "\r\n"
    path.write_bytes(body.encode("utf-8-sig"))
    held = load_data(DataConfig(name="csv", path=str(path)))
    streamed = load_data(DataConfig(name="csv", path=str(path), stream_above_mb=0))
    assert isinstance(streamed.train.inputs, CsvTexts) and isinstance(held.train.inputs, list)
    for a, b in ((streamed.train, held.train), (streamed.eval, held.eval)):
        assert list(a.inputs) == b.inputs and np.array_equal(a.labels, b.labels)
    assert "a text, with a comma\nand a second line" in list(streamed.train.inputs) + list(streamed.eval.inputs)
    (x_s, _), (x_h, _) = next(iter_batches(streamed.train, 5, True, 1)), next(iter_batches(held.train, 5, True, 1))
    assert x_s == x_h


def test_splits_of_a_streamed_csv_handed_to_the_python_api_are_text(tmp_path):
    from edgetl.data.inputs import as_data

    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    data = load_data(DataConfig(name="csv", path=str(path), stream_above_mb=0))
    assert as_data(data.train, data.eval).task == "text"


def test_unlabelled_target_images_over_the_budget_stay_on_disk_with_the_same_subset(tmp_path):
    from edgetl.data.datasets import load_target

    site = tmp_path / "site"
    site.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(site / f"{i}.png")
    _age(site)
    held = load_target(DataConfig(name="imagefolder", path=str(site), train_limit=12))
    streamed = load_target(DataConfig(name="imagefolder", path=str(site), train_limit=12, stream_above_mb=0))
    assert isinstance(streamed.inputs, ImageFiles) and len(streamed.inputs) == 12
    assert np.array_equal(streamed.inputs[:], held.inputs)
