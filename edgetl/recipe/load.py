"""Read a recipe file, apply `--set a.b.0.c=value` overrides, validate, and report every problem with its
field path (`stages.1.epochs: ...`), or with the override that caused it (`--set stages.0.epochs=abc: ...`).

A recipe is untrusted text: the YAML reader refuses what could blow up (anchors and aliases, deep nesting,
huge files) or silently lose a value (a key given twice), so bad input is a RecipeError, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from edgetl.errors import RecipeError, clip, shown
from edgetl.recipe.schema import DataConfig, RecipeBase, recipe_model

MAX_FILE_BYTES = 256 * 1024  # recipes are a few kB, and pure-Python PyYAML needs seconds per MB
MAX_PATH, MAX_PATH_PART = 4096, 255  # bytes in UTF-8: Linux's limits on a path and on one name in it
MAX_DEPTH = 32  # nesting levels; the composer recurses once per level (3,000 '[' overflowed the stack)


class RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader without anchors and aliases (a few hundred bytes of nested aliases expand to gigabytes),
    with a key given twice as an error (YAML keeps the last one silently) and a nesting cap."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ComposerError(None, None, "anchors and aliases (&name, *name) are not allowed in a recipe; "
                                "write the value out where it is used", event.start_mark)
        if self.depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # `!!int abc`, a date such as 2024-13-45
            raise ConstructorError(None, None, f"cannot read {shown(node.value)} as {shown(node.tag)}: {exc}",
                                   node.start_mark) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: SafeLoader reports it below
                if seen is not key_node:
                    raise ConstructorError(
                        None, None, f"key {shown(key)} is given twice, on line {seen.start_mark.line + 1} and on "
                        f"line {key_node.start_mark.line + 1}; keep one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document with RecipeLoader; errors come back as yaml.YAMLError with line and column."""
    loader = RecipeLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """`line 3, column 5: what is wrong`, without PyYAML's echo of the offending text (which can be huge)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(clip(str(p), 300) for p in (exc.context, exc.problem) if p)
        if mark is not None:
            return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
        return what
    return clip(str(exc), 300)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError(f"recipe file {path} does not exist", hint="check the path, e.g. recipes/quickstart-vision.yaml") from None
    except IsADirectoryError:
        raise RecipeError(f"recipe file {path} is a folder; expected a YAML file", hint="e.g. recipes/quickstart-vision.yaml") from None
    except OSError as exc:
        raise RecipeError(f"recipe file {path} cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise RecipeError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB; a recipe is a few kB of YAML",
                          hint="check that the path points at the recipe, not at data")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RecipeError(f"{path} is not UTF-8 text: byte {exc.start} (line {line}) is 0x{raw[exc.start]:02x}",
                          hint="save the recipe as UTF-8") from None
    try:
        data = load_yaml(text, str(path))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must hold a mapping with name, model, data and stages; got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.path=value` override in place; the value is parsed as YAML (2 -> int, a,b -> str)."""
    path, sep, raw = assignment.partition("=")
    label = f"--set {clip(assignment, 120)}"
    if not sep or not path:
        raise RecipeError(f"{label}: expected FIELD.PATH=VALUE, e.g. stages.0.epochs=2")
    try:
        value = load_yaml(raw, "--set value") if raw != "" else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{label}: the value is not valid YAML: {yaml_problem(exc)}",
                          hint="quote a text value, e.g. --set 'name=\"a: b\"'") from None
    keys = path.split(".")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = clip(".".join(keys[: i + 1]), 120)
        if isinstance(node, list):
            # ASCII digits only: str.isdigit() is true for '²', which int() refuses
            if not (key.isascii() and key.isdigit() and len(key) < 10 and int(key) < len(node)):
                raise RecipeError(f"{label}: {where} is not an index of a list of {len(node)} items")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise RecipeError(f"{label}: {clip('.'.join(keys[:i]), 120)} is a value, not a mapping or list")


def field_part(part: Any) -> str:
    """One step of a field path as printed: a list index, a plain key, or a quoted and cut odd key."""
    if isinstance(part, int) or (isinstance(part, str) and part.isprintable() and len(part) <= 80):
        return str(part)
    return shown(part)


def format_validation_error(exc: ValidationError, stage_types: set[str]) -> list[str]:
    """pydantic errors -> `field.path: message`. The discriminator tag pydantic puts in the location of a
    stage (`stages.1.finetune.epochs`) is dropped so the path matches the YAML (`stages.1.epochs`)."""
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        cleaned: list[str] = []
        for j, part in enumerate(loc):
            if j >= 2 and loc[0] == "stages" and j == 2 and isinstance(loc[1], int) and part in stage_types:
                continue
            cleaned.append(field_part(part))
        msg = err["msg"]
        if err["type"] == "value_error":  # our own validators' messages, without pydantic's "Value error, "
            msg = msg.removeprefix("Value error, ")
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `edgetl schema` lists every field)"
        elif err["type"] == "missing":
            msg = "field required"
        elif err["type"] == "union_tag_invalid":
            tag = err["input"].get("type") if isinstance(err["input"], dict) else None
            msg = f"unknown stage type {shown(tag)}; expected one of: {', '.join(sorted(stage_types))}"
        elif err["type"] == "union_tag_not_found":
            msg = f"each stage needs a `type:`, one of: {', '.join(sorted(stage_types))}"
        problems.append(f"{'.'.join(cleaned) or '<recipe>'}: {msg}")
    return problems


def text_problems(value: Any, where: str = "") -> list[str]:
    """Text no field may hold, anywhere in the recipe (keys too): a NUL byte, which every file system call
    refuses, a lone surrogate (a `\\ud800` escape), which is not Unicode and cannot be written out, or text
    past a file system's limits (paths and names are checked with os.stat, which fails on those)."""
    problems: list[str] = []
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_PATH or any(len(part) > MAX_PATH_PART for part in raw.split(b"/")):
            problems.append(f"{where or '<recipe>'}: {shown(value)} is {len(raw)} bytes long; a recipe value is at "
                            f"most {MAX_PATH} bytes, with at most {MAX_PATH_PART} between slashes (file system limits)")
        elif "\x00" in value:
            problems.append(f"{where or '<recipe>'}: {shown(value)} holds a NUL byte (\\0); remove it")
        elif not value.isascii() and not _is_utf8(value):
            problems.append(f"{where or '<recipe>'}: {shown(value)} holds a lone surrogate, which is not valid "
                            "Unicode text; remove the \\ud800-\\udfff escape")
    elif isinstance(value, dict):
        for key, item in value.items():
            at = f"{where}.{field_part(key)}" if where else field_part(key)
            problems += text_problems(key, at) + text_problems(item, at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += text_problems(item, f"{where}.{i}" if where else str(i))
    return problems


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def blame_overrides(problems: list[str], overrides: list[str]) -> list[str]:
    """Name the `--set` behind each problem on a field it set (`--set stages.0.epochs=abc: stages.0.epochs:
    ...`), or inside which it set something, so the user does not look for the mistake in the file."""
    blamed = []
    for problem in problems:
        field = problem.split(": ", 1)[0]
        for assignment in reversed(overrides):  # the last override of a field is the one that counts
            path = assignment.partition("=")[0]
            if field == path or field.startswith(path + "."):
                problem = f"--set {clip(assignment, 120)}: {problem}"
                break
            if path.startswith(field + "."):
                problem = f"{problem} (after --set {clip(assignment, 120)})"
                break
        blamed.append(problem)
    return blamed


def _data_configs(node: Any) -> list[DataConfig]:
    """Every DataConfig in a recipe, also those inside stages (e.g. finetune's adapt.target)."""
    if isinstance(node, DataConfig):
        return [node]
    if isinstance(node, BaseModel):
        return [d for name in type(node).model_fields for d in _data_configs(getattr(node, name))]
    if isinstance(node, (list, tuple)):
        return [d for item in node for d in _data_configs(item)]
    return []


def resolve_paths(recipe: RecipeBase, base: Path) -> None:
    """Make data and model paths absolute, relative to the recipe file's folder."""
    for data in _data_configs(recipe):
        for attr in ("path", "eval_path"):
            value = getattr(data, attr)
            if value and not Path(value).is_absolute():
                setattr(data, attr, str((base / value).resolve()))
    recipe.model.source = _resolved_source(recipe.model.source, base)
    if recipe.model.candidates:
        recipe.model.candidates = [_resolved_source(c, base) for c in recipe.model.candidates]


def _resolved_source(src: str, base: Path) -> str:
    """A model folder given relative to the recipe file as an absolute path; zoo names and hf: as they are."""
    if not src.startswith("hf:") and ("/" in src or src.startswith(".")):
        p = Path(src)
        if not p.is_absolute():
            return str((base / p).resolve())
    return src


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RecipeBase:
    path = Path(path)
    data = read_yaml(path)
    for assignment in overrides or []:
        apply_override(data, assignment)
    return parse_recipe(data, base=path.resolve().parent, source=str(path), overrides=overrides)


def parse_recipe(data: dict[str, Any], base: Path | None = None, source: str = "<recipe>",
                 overrides: list[str] | None = None) -> RecipeBase:
    """Validate `data` (already read and overridden); `overrides` only serve to name the `--set` behind a problem."""
    from edgetl.registry import STAGES

    overrides = list(overrides or [])
    problems = text_problems(data)
    try:
        recipe = recipe_model().model_validate(data)
    except ValidationError as exc:
        flagged = {p.split(": ", 1)[0] for p in problems}  # NUL or surrogate: said once, above
        problems += [p for p in format_validation_error(exc, set(STAGES.names())) if p.split(": ", 1)[0] not in flagged]
    if problems:
        raise RecipeError(
            f"{source} has {len(problems)} problem(s)",
            problems=blame_overrides(problems, overrides),
            hint="fix the fields above; `edgetl schema` prints every field with its description",
        )
    recipe._overrides = overrides
    try:
        resolve_paths(recipe, base or Path.cwd())
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a path too long for the system
        raise RecipeError(f"{source}: a data or model path cannot be resolved: {clip(str(exc), 300)}") from None
    return recipe


def recipe_json_schema() -> dict[str, Any]:
    return recipe_model().model_json_schema()


def recipe_to_dict(recipe: RecipeBase) -> dict[str, Any]:
    return json.loads(recipe.model_dump_json())
