import numpy as np
import pytest
from PIL import Image

from edgetl.data.datasets import load_data, stratified_split, stratified_subset
from edgetl.errors import DataError
from edgetl.recipe.schema import DataConfig


def test_stratified_subset_keeps_class_balance_and_is_deterministic():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    idx = stratified_subset(labels, 100, seed=3)
    assert len(idx) == 100
    assert np.bincount(labels[idx]).tolist() == [10, 20, 30, 40]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=3))


def test_stratified_split_is_disjoint_and_covers_everything():
    labels = np.repeat(np.arange(3), 50)
    tr, ev = stratified_split(labels, 0.2, seed=0)
    assert not set(tr) & set(ev) and len(tr) + len(ev) == 150
    assert np.bincount(labels[ev]).tolist() == [10, 10, 10]


def test_fashion_mnist_is_the_real_dataset():
    data = load_data(DataConfig(name="fashion_mnist"))
    assert data.train.inputs.shape == (60000, 28, 28) and len(data.eval) == 10000
    assert data.label_names[9] == "Ankle boot"
    assert np.bincount(data.eval.labels).tolist() == [1000] * 10


def test_rotten_tomatoes_is_deduplicated_and_split_by_class():
    data = load_data(DataConfig(name="rotten_tomatoes"))
    assert len(data.train) + len(data.eval) == 12752
    labels = np.concatenate([data.train.labels, data.eval.labels])
    assert np.bincount(labels).tolist() == [5384, 7368]
    assert not set(data.train.inputs) & set(data.eval.inputs)


def test_mnist_5k_loads_500_digits_per_class():
    data = load_data(DataConfig(name="mnist_5k"))
    labels = np.concatenate([data.train.labels, data.eval.labels])
    assert np.bincount(labels).tolist() == [500] * 10
    assert data.train.inputs.dtype == np.uint8 and data.train.inputs.max() > 200


def test_limits_take_stratified_subsets():
    data = load_data(DataConfig(name="fashion_mnist", train_limit=500, eval_limit=100))
    assert len(data.train) == 500 and np.bincount(data.eval.labels).tolist() == [10] * 10


def test_csv_with_a_wrong_label_column_names_the_field(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("review,sentiment\ngreat film,pos\nawful,neg\n")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", path=str(path), text_column="review"))
    assert "data.label_column" in str(err.value) and "sentiment" in str(err.value)


def test_csv_loads_text_and_labels(tmp_path):
    path = tmp_path / "r.csv"
    rows = [f"text {i},{'pos' if i % 2 else 'neg'}" for i in range(40)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    data = load_data(DataConfig(name="csv", path=str(path)))
    assert data.label_names == ["neg", "pos"] and len(data.train) + len(data.eval) == 40


def test_imagefolder_with_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_data(DataConfig(name="imagefolder", path=str(tmp_path)))
    assert data.label_names == ["cat", "dog"] and data.task == "image"
    assert data.train.inputs.ndim == 4 and len(data.train) + len(data.eval) == 20


def test_imagefolder_without_class_folders_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="class sub-folders"):
        load_data(DataConfig(name="imagefolder", path=str(tmp_path)))
