"""The user's image folders and CSV files read from disk when indexed, for data too big to hold in memory.

`ImageFiles` and `CsvTexts` index like the uint8 array / list of strings they stand in for (`x[i]`, `x[a:b]`,
`x[index_array]` return decoded images or strings), so every consumer that slices `Split.inputs` works
unchanged, and the values are the very ones the in-memory path holds. Training batches of `ImageFiles` are
decoded in torch DataLoader worker processes (`stream_batches`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgetl.errors import DataError

log = logging.getLogger(__name__)

SIZE_HINT = 256  # images of mixed shapes are brought to one square side, at most this, so they batch
SCAN_VERSION = 1
PARALLEL_FROM = 256  # files; fewer decode faster in this process than a worker pool starts
RACY_NS = 2_000_000_000  # a file written this recently may change again within one mtime tick: not cached


def worker_context() -> Any:
    """Where decoding processes come from. Not `fork`: forking a process whose other threads (ONNX Runtime's
    and OpenMP's pools, a tokenizer's) may hold a lock can leave the child waiting on it forever. A forkserver
    (spawn where there is none) starts workers from a clean process that has imported only this module and torch's
    DataLoader (imported once there, not once per worker and epoch)."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "torch.utils.data"])
    return ctx


class Bad(NamedTuple):
    """An image that cannot be decoded (a value, not an exception: it crosses process boundaries intact)."""

    message: str
    hint: str


def decode_image(path: str | Path) -> np.ndarray | Bad:
    """The decoded RGB image, or a `Bad` naming the file (PIL's own errors do not say which one)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
        return Bad(f"image {path} cannot be decoded ({type(exc).__name__}: {exc}): it is truncated, corrupt or not "
                   "an image", "replace or delete the file, or set data.skip_corrupt: true to skip such images")


def _decoded_shape(path: str) -> tuple[int, int] | Bad:
    """Decode fully (a truncated JPEG only shows when its pixels are read), keep only the shape."""
    image = decode_image(path)
    return image if isinstance(image, Bad) else (int(image.shape[0]), int(image.shape[1]))


def fit_square(image: np.ndarray, side: int) -> np.ndarray:
    """One image resized (bilinear, as the model preprocessing does) to side x side uint8."""
    from edgetl.runtime.preprocess import resize_bilinear

    return resize_bilinear(image[None].astype(np.float32), side)[0].round().astype(np.uint8)


def stack_images(arrays: list[np.ndarray], size_hint: int = SIZE_HINT) -> np.ndarray:
    """Bring decoded images to one shape (bilinear) so they batch; models resize again later."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays)
    side = min(size_hint, max(max(a.shape[0], a.shape[1]) for a in arrays))
    return np.stack([fit_square(a, side) for a in arrays])


def _positions(key: Any, n: int) -> np.ndarray:
    """Integer positions selected by a slice, an index array / list or a boolean mask."""
    if isinstance(key, slice):
        return np.arange(n)[key]
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean index of shape {idx.shape} for {n} items")
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.zeros(0, np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise IndexError(f"expected an int, a slice or a 1-d index array, got {type(key).__name__}")
    if idx.min() < -n or idx.max() >= n:
        raise IndexError(f"index out of range for {n} items")
    return np.where(idx < 0, idx + n, idx)


class ImageFiles:
    """Images of an image folder, decoded (and brought to one shape, as in memory) each time they are indexed.

    Stands in for a uint8 array (N, H, W, 3): `len`, `shape`, `ndim`, `dtype` and indexing by int, slice,
    index array or mask. `workers` is how many DataLoader processes decode training batches."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, paths: Sequence[str] | np.ndarray, item_shape: tuple[int, int, int], side: int | None,
                 workers: int = 0):
        self.paths = np.asarray(paths, dtype=str)
        self.item_shape: tuple[int, int, int] = (int(item_shape[0]), int(item_shape[1]), int(item_shape[2]))
        self.side = side  # mixed shapes: each image is resized to side x side
        self.workers = workers

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} images of {self.item_shape}, {self.paths[0] if len(self) else ''} ...)"

    def image(self, i: int) -> np.ndarray:
        path = str(self.paths[i])
        image = decode_image(path)
        if isinstance(image, Bad):  # it was read when the data was loaded: it changed since
            raise DataError(image.message, hint=image.hint)
        if self.side is not None:
            image = fit_square(image, self.side)
        if image.shape != self.item_shape:
            raise DataError(f"image {path} is {image.shape[1]}x{image.shape[0]} now, {self.item_shape[1]}x"
                            f"{self.item_shape[0]} when the data was loaded: the folder changed during the run",
                            hint="leave the data folder alone while edgetl runs, then run again")
        return image

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"image {key} of {n}")
            return self.image(int(key) % n)
        idx = _positions(key, len(self))
        out = np.empty((len(idx), *self.item_shape), np.uint8)
        for j, i in enumerate(idx):
            out[j] = self.image(int(i))
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.image(i) for i in range(len(self)))

    def subset(self, idx: Any) -> ImageFiles:
        return ImageFiles(self.paths[_positions(idx, len(self))], self.item_shape, self.side, self.workers)


# ---------------------------------------------------------------- loading scan


def _scan_key(paths: list[str]) -> tuple[str, bool]:
    """(key of the file list with sizes and mtimes, whether every file is old enough to trust its mtime)."""
    h = hashlib.sha256(f"v{SCAN_VERSION}\n".encode())
    newest = 0
    for p in paths:
        st = os.stat(p)
        newest = max(newest, st.st_mtime_ns)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest(), time.time_ns() - newest > RACY_NS


def scan_cache_dir() -> Path:
    return Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "image-scans"


def _load_scan(key: str, n: int) -> tuple[np.ndarray, dict[int, Bad]] | None:
    try:
        with np.load(scan_cache_dir() / f"{key}.npz", allow_pickle=False) as z:
            shapes, bad = z["shapes"], json.loads(str(z["bad"]))
    except (OSError, ValueError, KeyError):
        return None  # none yet, or damaged: scan again
    if shapes.shape != (n, 2):
        return None
    return shapes, {int(i): Bad(*v) for i, v in bad.items()}


def _save_scan(key: str, shapes: np.ndarray, bad: dict[int, Bad]) -> None:
    folder = scan_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.npz"
        np.savez(tmp, shapes=shapes, bad=np.asarray(json.dumps({i: list(b) for i, b in bad.items()})))
        os.replace(tmp, folder / f"{key}.npz")
    except OSError as exc:  # a read-only home must not stop a run; the next run scans again
        log.debug("could not write the image scan cache in %s: %s", folder, exc)


def _handle_bad(path: str, bad: Bad, skip_corrupt: bool, skipped: list[str]) -> None:
    if not skip_corrupt:
        raise DataError(bad.message, hint=bad.hint)
    log.warning("skipped (data.skip_corrupt): %s", bad.message)
    skipped.append(path)


def decoded_size(paths: Sequence[str], limit: int) -> int:
    """Bytes the images take decoded, from their headers (no pixels read); counting stops past `limit`."""
    from PIL import Image

    total = 0
    for p in paths:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 - not an image: the decoding pass names it
            continue
        total += w * h * 3
        if total > limit:
            break
    return total


def read_images(files: Sequence[Path], *, skip_corrupt: bool, skipped: list[str], stream_above: int | None = None,
                workers: int = 0) -> tuple[np.ndarray | ImageFiles, np.ndarray]:
    """(images, positions in `files` of the decodable ones). Every file is decoded once, so a corrupt one is
    named (or skipped with skip_corrupt) before training. Images that decode to at most `stream_above` bytes
    (None: no limit) are kept as one array; bigger folders become an `ImageFiles` that decodes them again when
    indexed, and the scan's result is cached (by file names, sizes and mtimes) so the next run skips it."""
    paths = [str(p) for p in files]
    n = len(paths)
    stream = stream_above is not None and decoded_size(paths, stream_above) > stream_above
    bad: dict[int, Bad] = {}
    if stream:
        log.info("images of %d files decode to more than %.0f MB (data.stream_above_mb): they stay on disk and are "
                 "decoded batch by batch", n, (stream_above or 0) / 1e6)
        key, trusted = _scan_key(paths)
        cached = _load_scan(key, n)
        if cached is not None:
            shapes, bad = cached
            log.info("image scan of %d files read from the cache", n)
            for i in sorted(bad):
                _handle_bad(paths[i], bad[i], skip_corrupt, skipped)
            return _streamed(paths, shapes, workers)
    shapes = np.full((n, 2), -1, np.int32)
    arrays: list[np.ndarray] = []
    # a pool pays for itself past a few hundred files; a daemonic process (itself a pool worker) may not have one
    parallel = workers and n > PARALLEL_FROM and not multiprocessing.current_process().daemon
    pool = worker_context().Pool(min(workers, os.cpu_count() or 1)) if parallel else None
    try:
        work = _decoded_shape if stream else decode_image
        # in order, so without skip_corrupt the first bad file in the listing is the one named
        results: Iterator[Any] = pool.imap(work, paths, chunksize=16) if pool else map(work, paths)
        for i, result in enumerate(results):
            if isinstance(result, Bad):
                bad[i] = result
                _handle_bad(paths[i], result, skip_corrupt, skipped)
            elif stream:
                shapes[i] = result
            else:
                arrays.append(result)
                shapes[i] = result.shape[:2]
    finally:
        if pool is not None:
            pool.terminate()
    if stream:
        if trusted:
            _save_scan(key, shapes, bad)
        return _streamed(paths, shapes, workers)
    if not arrays:
        raise DataError(f"none of the {n} images ({paths[0]}, ...) can be decoded",
                        hint="check the files: data.skip_corrupt skips bad images, but there must be good ones")
    return stack_images(arrays), np.flatnonzero(shapes[:, 0] >= 0)


def _streamed(paths: list[str], shapes: np.ndarray, workers: int) -> tuple[ImageFiles, np.ndarray]:
    keep = np.flatnonzero(shapes[:, 0] >= 0)
    if not len(keep):
        raise DataError(f"none of the {len(paths)} images ({paths[0]}, ...) can be decoded",
                        hint="check the files: data.skip_corrupt skips bad images, but there must be good ones")
    kept = shapes[keep]
    if (kept == kept[0]).all():
        images = ImageFiles(np.asarray(paths)[keep], (int(kept[0, 0]), int(kept[0, 1]), 3), None, workers)
    else:  # as stack_images: one square side, the largest side present but at most SIZE_HINT
        side = int(min(SIZE_HINT, kept.max()))
        images = ImageFiles(np.asarray(paths)[keep], (side, side, 3), side, workers)
    return images, keep


# ---------------------------------------------------------------- training batches from worker processes


def _as_is(batch: Any) -> Any:
    return batch


class _Batches:
    """Map-style dataset whose item k is the k-th batch (decoded images, labels), or the `Bad` that stopped it."""

    def __init__(self, images: ImageFiles, labels: np.ndarray, batches: list[np.ndarray]):
        self.images, self.labels, self.batches = images, labels, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray] | Bad:
        idx = self.batches[k]
        try:
            return self.images[idx], self.labels[idx]
        except DataError as exc:  # re-raised in the training process with its hint
            return Bad(str(exc), exc.hint or "")


def stream_batches(images: ImageFiles, labels: np.ndarray, batches: list[np.ndarray],
                   workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches, in order, decoded ahead of use by `workers` DataLoader processes."""
    from torch.utils.data import DataLoader

    workers = min(workers, len(batches))
    dataset: Any = _Batches(images, labels, batches)  # a map-style dataset need not subclass torch's Dataset
    loader: Any = DataLoader(dataset, batch_size=None, shuffle=False, collate_fn=_as_is, num_workers=workers,
                             prefetch_factor=2 if workers else None,
                             multiprocessing_context=worker_context() if workers else None)
    for item in loader:
        if isinstance(item, Bad):
            raise DataError(item.message, hint=item.hint or None)
        yield item


# ---------------------------------------------------------------- CSV rows by byte offset


class CsvTexts:
    """The text column of a CSV file, read from the file when indexed: a list of strings in memory (the byte
    range of each row is remembered, not its text). Strings come back exactly as csv.DictReader gave them."""

    def __init__(self, path: str | Path, starts: np.ndarray, ends: np.ndarray, column: int):
        self.path = str(path)
        self.starts = np.asarray(starts, np.int64)
        self.ends = np.asarray(ends, np.int64)
        self.column = column

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        return f"CsvTexts({len(self)} rows of {self.path})"

    def _read(self, idx: np.ndarray) -> list[str]:
        out = []
        with open(self.path, "rb") as f:
            for i in idx:
                f.seek(self.starts[i])
                text = f.read(int(self.ends[i] - self.starts[i])).decode("utf-8")
                # the range may begin with blank lines, which DictReader skipped too
                row = next(r for r in csv.reader(io.StringIO(text, newline="")) if r)
                out.append(row[self.column])
        return out

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"row {key} of {n}")
            return self._read(np.asarray([int(key) % n]))[0]
        return self._read(_positions(key, len(self)))

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 1024):
            yield from self._read(np.arange(start, min(start + 1024, len(self))))

    def subset(self, idx: Any) -> CsvTexts:
        pos = _positions(idx, len(self))
        return CsvTexts(self.path, self.starts[pos], self.ends[pos], self.column)


class LineOffsets:
    """Wraps a text file opened with newline="" and counts the UTF-8 bytes of the lines csv reads from it, so
    `pos` is the byte offset where the next row starts."""

    def __init__(self, f: io.TextIOBase, start: int):
        self.f = f
        self.pos = start

    def __iter__(self) -> LineOffsets:
        return self

    def __next__(self) -> str:
        line = next(self.f)
        self.pos += len(line.encode("utf-8"))
        return line
