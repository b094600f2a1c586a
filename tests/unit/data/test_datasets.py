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


def test_digits_are_the_8x8_uci_scans_on_the_full_grey_range():
    data = load_data(DataConfig(name="digits"))
    assert len(data.train) + len(data.eval) == 1797 and data.label_names == [str(i) for i in range(10)]
    assert data.train.inputs.shape[1:] == (8, 8) and data.train.inputs.dtype == np.uint8
    assert data.train.inputs.max() == 255  # 17 grey levels (0-16) stretched to 0-255 like MNIST's


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


def _image_folder(root, counts, size=(12, 12)):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / cls / f"{i}.jpg")
    return root


def _truncate(path):
    path.write_bytes(path.read_bytes()[:60])


def test_a_truncated_image_is_a_data_error_naming_the_file(tmp_path):
    root = _image_folder(tmp_path / "imgs", {"cat": 5, "dog": 5})
    _truncate(root / "dog" / "3.jpg")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="imagefolder", path=str(root)))
    assert str(root / "dog" / "3.jpg") in str(err.value) and "skip_corrupt" in err.value.hint


def test_skip_corrupt_skips_and_counts_bad_images(tmp_path, caplog):
    root = _image_folder(tmp_path / "imgs", {"cat": 5, "dog": 5})
    _truncate(root / "dog" / "3.jpg")
    (root / "cat" / "notes.png").write_text("not an image")
    with caplog.at_level("WARNING"):
        data = load_data(DataConfig(name="imagefolder", path=str(root), skip_corrupt=True))
    assert len(data.train) + len(data.eval) == 9  # 11 files, 2 bad
    assert sorted(data.skipped) == sorted([str(root / "dog" / "3.jpg"), str(root / "cat" / "notes.png")])
    assert "2 corrupt image(s) skipped" in data.source and "skipped 2 corrupt image(s)" in caplog.text


def test_csv_with_a_byte_order_mark_finds_its_first_column(tmp_path):
    path = tmp_path / "r.csv"
    rows = [f"text {i},{'pos' if i % 2 else 'neg'}" for i in range(10)]
    path.write_bytes(("text,label\n" + "\n".join(rows) + "\n").encode("utf-8-sig"))
    data = load_data(DataConfig(name="csv", path=str(path)))
    assert len(data.train) + len(data.eval) == 10 and data.train.inputs[0].startswith("text ")


@pytest.mark.parametrize("bad_row, message", [
    ("only text", "row 3 (line 4) has 1 fields, the header has 2"),
    ("a, b,neg", "row 3 (line 4) has 3 fields, the header has 2"),
    ("  ,neg", "row 3 (line 4): the text ('text') is empty"),
    ("some text,", "row 3 (line 4): the label ('label') is empty"),
])
def test_a_bad_csv_row_is_a_data_error_naming_file_and_row(tmp_path, bad_row, message):
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngood,pos\nfine,neg\n" + bad_row + "\nmore,pos\n")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", path=str(path)))
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_class_with_one_example_stays_in_training():
    labels = np.array([0] * 10 + [1] * 10 + [2])
    tr, ev = stratified_split(labels, 0.2, seed=0)
    assert 20 in tr and 20 not in ev
    assert np.bincount(labels[ev]).tolist() == [2, 2]
    assert set(labels[stratified_subset(labels, 6, seed=0)]) == {0, 1, 2}


def test_a_two_row_csv_asks_for_more_rows_instead_of_training_on_nothing(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngreat film,pos\nawful,neg\n")
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", path=str(path)))
    assert "at least 2 examples" in str(err.value) and "data.eval_path" in err.value.hint
    path.write_text("text,label\ngreat film,pos\nawful,neg\nsuperb,pos\ndull,neg\n")
    data = load_data(DataConfig(name="csv", path=str(path)))
    assert len(data.train) == 2 and len(data.eval) == 2


def test_data_problems_find_unreadable_user_data_without_loading_it(tmp_path):
    from edgetl.data.datasets import data_problems

    root = _image_folder(tmp_path / "imgs", {"cat": 2, "dog": 0})
    assert any("dog" in p and "hold no images" in p for p in data_problems(DataConfig(name="imagefolder", path=str(root))))
    (tmp_path / "empty").mkdir()
    assert "class sub-folders" in data_problems(DataConfig(name="imagefolder", path=str(tmp_path / "empty")))[0]
    good = _image_folder(tmp_path / "good", {"cat": 1, "dog": 1})
    assert data_problems(DataConfig(name="imagefolder", path=str(good))) == []

    csv_path = tmp_path / "r.csv"
    csv_path.write_text("review,label\ngreat,pos\n")
    (problem,) = data_problems(DataConfig(name="csv", path=str(csv_path)))
    assert problem.startswith("data.text_column") and "review" in problem
    assert data_problems(DataConfig(name="csv", path=str(csv_path), text_column="review")) == []
