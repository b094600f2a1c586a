"""Read a recipe file, apply `--set a.b.0.c=value` overrides, validate, and report every problem with its
field path (`stages.1.epochs: ...`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edgetl.errors import RecipeError
from edgetl.recipe.schema import RecipeBase, recipe_model


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RecipeError(f"recipe file {path} does not exist", hint="check the path, e.g. recipes/quickstart-vision.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must hold a mapping with name, model, data and stages; got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.path=value` override in place; the value is parsed as YAML (2 -> int, a,b -> str)."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise RecipeError(f"--set {assignment!r}: expected FIELD.PATH=VALUE, e.g. stages.0.epochs=2")
    value = yaml.safe_load(raw) if raw != "" else None
    keys = path.split(".")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise RecipeError(f"--set {path}: {where} is not an index of a list of {len(node)} items")
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
            raise RecipeError(f"--set {path}: {'.'.join(keys[:i])} is a value, not a mapping or list")


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
            cleaned.append(str(part))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `edgetl schema` lists every field)"
        elif err["type"] == "missing":
            msg = "field required"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown stage type {err['input'].get('type')!r}; expected one of: {', '.join(sorted(stage_types))}"
        elif err["type"] == "union_tag_not_found":
            msg = f"each stage needs a `type:`, one of: {', '.join(sorted(stage_types))}"
        problems.append(f"{'.'.join(cleaned) or '<recipe>'}: {msg}")
    return problems


def resolve_paths(recipe: RecipeBase, base: Path) -> None:
    """Make data and model paths absolute, relative to the recipe file's folder."""
    for attr in ("path", "eval_path"):
        value = getattr(recipe.data, attr)
        if value and not Path(value).is_absolute():
            setattr(recipe.data, attr, str((base / value).resolve()))
    src = recipe.model.source
    if not src.startswith("hf:") and ("/" in src or src.startswith(".")):
        p = Path(src)
        if not p.is_absolute():
            recipe.model.source = str((base / p).resolve())


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RecipeBase:
    path = Path(path)
    data = read_yaml(path)
    for assignment in overrides or []:
        apply_override(data, assignment)
    return parse_recipe(data, base=path.resolve().parent, source=str(path))


def parse_recipe(data: dict[str, Any], base: Path | None = None, source: str = "<recipe>") -> RecipeBase:
    from edgetl.registry import STAGES

    model = recipe_model()
    try:
        recipe = model.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc, set(STAGES.names()))
        raise RecipeError(
            f"{source} has {len(problems)} problem(s)",
            problems=problems,
            hint="fix the fields above; `edgetl schema` prints every field with its description",
        ) from None
    resolve_paths(recipe, base or Path.cwd())
    return recipe


def recipe_json_schema() -> dict[str, Any]:
    return recipe_model().model_json_schema()


def recipe_to_dict(recipe: RecipeBase) -> dict[str, Any]:
    return json.loads(recipe.model_dump_json())
