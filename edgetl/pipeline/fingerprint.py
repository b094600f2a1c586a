"""What a run's results depend on besides the recipe's text: the bytes of the user's data (imagefolder / csv),
of a local model folder or teacher folder, and the edgetl version. These go into the stage keys, so a CSV
edited in place or a retrained model folder reruns the stages instead of reusing results of the old files.

Named offline datasets and zoo models come from pinned packages and need no content hash. File hashes are
cached by (path, size, mtime_ns) in a small JSON file, so a large image folder is read once, not per run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from edgetl.runtime.files import sha256_file, write_json_atomic

log = logging.getLogger(__name__)
USER_DATA = ("imagefolder", "csv")
# a file changed within this window of its hashing can share its (size, mtime) with the next version
# (coarse file system clocks), so such hashes are not cached
RACY_NS = 2_000_000_000


def cache_file() -> Path:
    return Path(os.environ.get("EDGETL_CACHE", Path.home() / ".cache" / "edgetl")) / "file-hashes.json"


class HashCache:
    """sha256 of files, remembered by (resolved path, size, mtime_ns)."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_file()
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass  # no cache yet, or a damaged one: hash again

    def digest(self, path: Path) -> tuple[str, int]:
        st = path.stat()
        key = str(path.resolve())
        hit = self.entries.get(key)
        if isinstance(hit, list) and len(hit) == 3 and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2]), st.st_size
        sha = sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self.entries[key] = [st.st_size, st.st_mtime_ns, sha]
            self.dirty = True
        return sha, st.st_size

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, self.entries)
            self.dirty = False
        except OSError as exc:  # a read-only home must not stop a run; the next run hashes again
            log.debug("could not write the file hash cache %s: %s", self.path, exc)


def path_fingerprint(path: Path, cache: HashCache) -> dict[str, Any]:
    """Content hash of a file, or of a folder (relative names + file hashes), with its file count and size."""
    if path.is_file():
        sha, size = cache.digest(path)
        return {"sha256": sha, "files": 1, "size_bytes": size}
    if not path.is_dir():
        return {"missing": True}
    h = hashlib.sha256()
    files, total = 0, 0
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        sha, size = cache.digest(p)
        h.update(p.relative_to(path).as_posix().encode() + b"\0" + sha.encode() + b"\n")
        files, total = files + 1, total + size
    return {"sha256": h.hexdigest(), "files": files, "size_bytes": total}


def local_model_folder(source: str) -> Path | None:
    """The folder behind `model.source` when it is one (`hf:<folder>` or a saved edgetl model), else None."""
    from edgetl.models.zoo import ZOO

    if source in ZOO:
        return None
    ref = source[3:] if source.startswith("hf:") else source
    return Path(ref) if ref and Path(ref).is_dir() else None


def recipe_fingerprint(recipe, cache: HashCache) -> dict[str, Any]:
    """The edgetl version, and the content of the recipe's user data and local model folder (or the file of
its `python:` factory)."""
    out: dict[str, Any] = {"edgetl": _version()}
    data = recipe.data
    if data.name in USER_DATA:
        out["data"] = {attr: path_fingerprint(Path(value), cache)
                       for attr in ("path", "eval_path") if (value := getattr(data, attr))}
    folder = local_model_folder(recipe.model.source)
    if folder is not None:
        out["model"] = path_fingerprint(folder, cache)
    if recipe.model.source.startswith("python:"):  # an edited factory reruns the stages
        from edgetl.models.custom import factory_file

        path = factory_file(recipe.model.source)
        if path is not None:
            out["model"] = path_fingerprint(path, cache)
    return out


def stage_fingerprint(config, cache: HashCache) -> dict[str, Any]:
    """Content of a folder a stage reads by path: a `kd.teacher` that is a saved model folder."""
    teacher = getattr(getattr(config, "kd", None), "teacher", None)
    if teacher and Path(teacher).is_dir():
        return {"teacher": path_fingerprint(Path(teacher), cache)}
    return {}


def _version() -> str:
    from edgetl import __version__

    return __version__
