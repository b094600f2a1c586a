"""A stage store shared by several run folders (the trials of `edgetl search`, on one machine or on machines that
share a folder): every finished stage is kept under STORE/stages/<id>-<key>/ by its content key, and a run that
needs a stage another run already made gets a hard-linked copy (a copy where links are impossible) instead of
computing it again. A stage is computed under a per-key file lock, so two workers that need it at the same time
compute it once: the second waits and then copies. Run folders stay self-contained (files, not links out)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgetl.runtime.files import replace_dir


@contextmanager
def stage_lock(store: Path, dirname: str) -> Iterator[None]:
    """Hold the store's lock for one stage key (blocking: another worker computing it finishes first)."""
    from filelock import FileLock

    locks = store / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{dirname}.lock")):
        yield


def copy_tree(src: Path, dst: Path) -> None:
    """`src` into the new folder `dst`, files hard-linked where the file system allows it."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def place(src: Path, final: Path) -> None:
    """Put a copy of the finished stage folder `src` at `final` (built under .tmp- and renamed, as stages are)."""
    tmp = final.parent / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    copy_tree(src, tmp)
    replace_dir(tmp, final)
