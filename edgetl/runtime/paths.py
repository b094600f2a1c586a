"""Names read from files (a bundle manifest, a saved model's `model.json`) that become paths on disk.

Such a file may come from elsewhere (an over-the-air update, a shared run folder), so a name in it must not
reach outside its folder: no absolute path, no `..`, no symlink that leaves. Standard library only.
"""

from __future__ import annotations

from pathlib import Path


def _common_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"is not a string ({type(name).__name__})"
    if not name:
        return "is empty"
    if "\x00" in name:
        return "holds a NUL character"
    if "\\" in name:
        return "holds a backslash (paths use '/')"
    # a drive letter (C:...) is absolute on Windows, where a bundle may be unpacked too
    if name.startswith("/") or (name[:1].isalpha() and name[1:2] == ":"):
        return "is an absolute path"
    return None


def relpath_problem(rel: object) -> str | None:
    """Why `rel` is not a plain relative POSIX path inside its folder (`models/m/model.onnx`), or None."""
    problem = _common_problem(rel)
    if problem:
        return problem
    parts = str(rel).split("/")
    if ".." in parts:
        return "holds '..'"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' part"
    return None


def filename_problem(name: object) -> str | None:
    """Why `name` is not a plain file name (`tokenizer.json`: no folder part at all), or None."""
    problem = _common_problem(name)
    if problem:
        return problem
    if "/" in str(name):
        return "holds a path separator"
    if name in (".", ".."):
        return f"is {name!r}"
    return None


def leaves(root: Path, path: Path) -> bool:
    """True when `path`, with every symlink followed, is not inside `root`."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return True
    return False
