"""One writer per run folder. Two runs into one folder would build the same `.tmp-` stage folders and delete
each other's work, so `compress` holds an exclusive lock on `RUN/.edgetl.lock` for the whole run. The lock is
an OS file lock (filelock): a killed process releases it, so there is never a stale lock to clear by hand.
Who holds it (pid, host, start time, command) is written next to it, for the message the second run prints.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgetl.errors import RunFolderBusyError
from edgetl.runtime.files import write_json_atomic

LOCK_FILE = ".edgetl.lock"
HOLDER_FILE = ".edgetl.lock.json"


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the duration of the block; RunFolderBusyError when another process has it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(run_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunFolderBusyError(
            f"run folder {run_dir} is in use by {describe_holder(read_holder(run_dir))}",
            hint="wait for that run to finish (finished stages are then reused), or give this run another --out",
        ) from None
    holder = run_dir / HOLDER_FILE
    try:
        write_json_atomic(holder, {
            "pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": _command(),
        })
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _command() -> str:
    if not sys.argv:
        return ""
    name = Path(sys.argv[0]).name
    return " ".join(["edgetl" if name == "__main__.py" else name, *sys.argv[1:]])[:300]


def read_holder(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its details yet)"
    text = f"pid {holder.get('pid')} on host {holder.get('host')}, running since {holder.get('started')}"
    return text + (f" ({holder['command']})" if holder.get("command") else "")
