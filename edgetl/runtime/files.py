"""File helpers shared from the runtime up to the pipeline: sha256 of a file or an artifact folder, stable
hashes of JSON-able values, and writes that a crash (or power loss) never leaves half done.

Standard library only, so the runtime (which checks every bundle file's sha256) and everything above it use
the same code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def files_of(path: Path) -> list[Path]:
    """The files that make up an artifact: a file (plus ONNX external data next to it) or a folder's files."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    extra = [path.with_name(path.name + ".data")] if path.with_name(path.name + ".data").exists() else []
    return [path, *extra]


def digest_and_size(path: Path) -> tuple[str, int]:
    """sha256 of a file, or of a folder (hash over relative names and file hashes), and its total size."""
    files = files_of(path)
    if not path.is_dir() and len(files) == 1:
        return sha256_file(path), path.stat().st_size
    h = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for p in files:
        h.update(p.relative_to(root).as_posix().encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest(), sum(p.stat().st_size for p in files)


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a reader never sees half a file, and a crash (or power loss) leaves the old file in place."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())  # the data reaches the disk before the rename can
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under root: after a crash a renamed stage folder is whole, never holes."""
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            except OSError:  # a dangling link: nothing to flush
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place, its contents flushed to disk first."""
    fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)
