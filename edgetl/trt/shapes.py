"""Optimisation-profile shapes: named dynamic axes (`batch`, `sequence`) -> (min, opt, max) per input.

edgetl exports ONNX with dynamic axes named `batch` (and `sequence` for text), so a recipe or `--shapes`
states ranges per axis name rather than per tensor:

    --shapes batch=1:1:32,sequence=8:64:128     (AXIS=MIN:OPT:MAX, or AXIS=N for a fixed size)
"""

from __future__ import annotations

from typing import Any

from edgetl.errors import RecipeError

Range = tuple[int, int, int]
DEFAULT_BATCH: Range = (1, 1, 32)  # single-stream latency at batch 1, room for accuracy passes in batches


def parse_range(axis: str, value: Any, where: str = "--shapes") -> Range:
    """`8`, `1:8:32`, [1, 8, 32] or [8] -> (min, opt, max), checked."""
    if isinstance(value, int) and not isinstance(value, bool):
        parts: list[Any] = [value]
    elif isinstance(value, str):
        parts = value.split(":")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise RecipeError(f"{where}: {axis} must be N or MIN:OPT:MAX, got {value!r}")
    try:
        nums = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise RecipeError(f"{where}: {axis}={value!r} is not a whole number or MIN:OPT:MAX",
                          hint="e.g. batch=1:1:32 or sequence=128") from None
    if len(nums) == 1:
        nums = nums * 3
    if len(nums) != 3:
        raise RecipeError(f"{where}: {axis} needs 1 or 3 values (N or MIN:OPT:MAX), got {len(nums)}: {value!r}")
    lo, opt, hi = nums
    if lo < 1 or not lo <= opt <= hi:
        raise RecipeError(f"{where}: {axis}={lo}:{opt}:{hi} must satisfy 1 <= min <= opt <= max")
    return (lo, opt, hi)


def parse_shapes(text: str | None) -> dict[str, Range]:
    """`batch=1:1:32,sequence=128` -> {"batch": (1, 1, 32), "sequence": (128, 128, 128)}."""
    out: dict[str, Range] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        axis, sep, value = item.partition("=")
        if not sep or not axis.strip() or not value.strip():
            raise RecipeError(f"--shapes: {item!r} is not AXIS=MIN:OPT:MAX",
                              hint="e.g. --shapes batch=1:1:32,sequence=8:64:128")
        axis = axis.strip()
        if axis in out:
            raise RecipeError(f"--shapes: axis {axis!r} is given twice")
        out[axis] = parse_range(axis, value.strip())
    return out


def default_ranges(task: str | None, max_length: int | None) -> dict[str, Range]:
    ranges = {"batch": DEFAULT_BATCH}
    if task == "text":
        n = int(max_length or 128)
        ranges["sequence"] = (1, n, n)  # the tokenizer pads to the longest text of a batch, at most max_length
    return ranges


def _axis_name(spec: dict[str, Any], i: int, dim: Any) -> str | None:
    """The range name of one dimension, or None when it is static."""
    if isinstance(dim, int) and dim > 0:
        return None
    return dim if isinstance(dim, str) and dim else ("batch" if i == 0 else f"{spec['name']}:{i}")


def dynamic_axes(inputs: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for spec in inputs:
        for i, dim in enumerate(spec["shape"]):
            axis = _axis_name(spec, i, dim)
            if axis is not None and axis not in names:
                names.append(axis)
    return names


def profile_shapes(inputs: list[dict[str, Any]], ranges: dict[str, Range]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per input name: (min_shape, opt_shape, max_shape). `inputs` as in model.json / the bundle manifest:
    [{"name", "shape": [size, or axis name / -1 / None when dynamic]}]. Every dynamic dim needs a range."""
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for spec in inputs:
        mins, opts, maxs = [], [], []
        for i, dim in enumerate(spec["shape"]):
            axis = _axis_name(spec, i, dim)
            if axis is None:
                lo = opt = hi = int(dim)
            elif axis in ranges:
                lo, opt, hi = ranges[axis]
            else:
                raise RecipeError(
                    f"input {spec['name']!r} dimension {i} is dynamic ({axis!r}) and the shapes give it no range",
                    hint=f"add {axis}=MIN:OPT:MAX to --shapes (or to `shapes:` in the recipe)",
                )
            mins.append(lo)
            opts.append(opt)
            maxs.append(hi)
        out[spec["name"]] = (tuple(mins), tuple(opts), tuple(maxs))
    return out


def resolve_profile(inputs: list[dict[str, Any]], user: dict[str, Range] | None = None, *, task: str | None = None,
                    max_length: int | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Defaults (batch 1:1:32, sequence 1:max_length:max_length) for the axes the model has, overridden by
    `user`; an axis the model does not have is an error (a typo would otherwise be ignored)."""
    axes = dynamic_axes(inputs)
    unknown = sorted(set(user or {}) - set(axes))
    if unknown:
        raise RecipeError(f"shapes name axes the model does not have: {', '.join(unknown)}; its dynamic axes are "
                          f"{', '.join(axes) or 'none (all static)'}")
    ranges = {k: v for k, v in default_ranges(task, max_length).items() if k in axes}
    ranges.update(user or {})
    return profile_shapes(inputs, ranges)


def describe(profile: dict[str, tuple[tuple[int, ...], ...]]) -> dict[str, dict[str, list[int]]]:
    """JSON form of a profile (for manifests and cache keys)."""
    return {name: {"min": list(s[0]), "opt": list(s[1]), "max": list(s[2])} for name, s in sorted(profile.items())}
