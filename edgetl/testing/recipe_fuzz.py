"""Property-based fuzzing of recipes: hypothesis strategies that mutate the shipped recipes (keys, types,
values, bytes, nesting, aliases, duplicates, `--set` paths and values), and the property every mutant must
keep: loading and validating it either succeeds or raises an EdgetlError whose rendered text is short.
Shared by tests/unit/recipe/test_fuzz.py (a few hundred cases) and benchmarks/fuzz_recipes.py (thousands).
Needs hypothesis (the `dev` extra)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from edgetl.errors import MAX_PROBLEMS, EdgetlError

MAX_RENDERED_LINE = 500  # messages quote values cut to 80 characters; a longer line quotes user text in full
MAX_RENDERED_LINES = MAX_PROBLEMS + 4  # header, problems, "... and N more", hint

# Values that broke or slipped past validation before, next to what hypothesis makes up.
ODD_TEXT = [
    "", " ", ".", "..", "../..", "../../x", "a/b", "a\\b", "a\x00b", "\x00", "\ud800", "\x1b[2J", "tab\there",
    "line\nbreak", "hf:", "hf:../../x", "hf:a/b/c", "hf:owner/name", "hf:/tmp", "hf:a--b", "x" * 5000, "é" * 60,
    "𝟘𝟙", "٣", "²", "[", "{", "*a", "&a x", "!!int abc", "!!python/object:os.system", "2024-13-45", "1e400",
    "-1", "nan", ".nan", ".inf", "-.inf", "2**70", "0x10", "true", "null", "~", "%", "@", "`", "'", '"', "- a",
    "a: b", "? x", "<<: {a: 1}", "hf:" + "x" * 300, "/" + "x" * 300, "x/" * 3000, "/root/x", "/dev/null", "/",
    "~", "~/x", "hf:~", "tiny_cnn", "minilm_l6", "imagefolder", "finetuned",
]
# String fields that name files, folders or models: set to odd text more often than chance would.
TEXT_FIELDS = [("name",), ("model", "source"), ("model", "revision"), ("data", "path"), ("data", "eval_path"),
               ("data", "text_column"), ("stages", "*", "name"), ("stages", "*", "kd", "teacher"),
               ("stages", "*", "cache_dir"), ("stages", "*", "artifact")]
ODD_NUMBERS = [-1, 0, 1, 2**31, 2**32, 2**32 - 1, 2**63, 2**70, -(2**70), 10**30, float("nan"), float("inf"),
               float("-inf"), 1e308, -0.0, 5e-324]
YAML_SNIPPETS = [
    "&a ", "*a ", "<<: *a\n", "!!python/object/apply:os.system ['true'] ", "!!int abc ", "!!float x ",
    "!!binary ~ ", "!!timestamp 2024-13-45 ", "!!set {a, b} ", "!!omap [a: 1] ", "? [a, b]\n: 1\n", "\t", "\x00",
    "\ufeff", "%YAML 1.1\n---\n", "---\n", "...\n", "{", "}", "[", "]", ": ", "- ", "'", '"', "#", "|\n", ">\n",
    "key: value\nkey: other\n", "2024-13-45", "1.0e+999", ".nan", "\x85", "\u2028", "\\", "\r",
]
ALIAS_BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n")


@dataclass
class Case:
    base: str  # the shipped recipe it came from
    content: bytes  # the recipe file
    overrides: list[str] = field(default_factory=list)  # --set assignments
    mutation: str = ""


def shipped_recipes(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, p.read_text()) for p in sorted(Path(folder).glob("*.yaml"))]


def check_case(case: Case, work_dir: Path) -> str:
    """Load and validate like `edgetl validate`, in-process: "ok", or "error" for an EdgetlError (exit 2 on the
    command line) whose rendered text is bounded. Any other exception propagates: that is a bug."""
    from edgetl.pipeline.runner import validate
    from edgetl.recipe.load import load_recipe

    path = Path(work_dir) / "recipe.yaml"
    path.write_bytes(case.content)
    try:
        validate(load_recipe(path, case.overrides), str(path))
    except EdgetlError as exc:
        lines = exc.render().split("\n")
        if len(lines) > MAX_RENDERED_LINES or max(len(line) for line in lines) > MAX_RENDERED_LINE:
            raise AssertionError(f"{case.mutation}: the error renders to {len(lines)} lines, the longest "
                                 f"{max(len(line) for line in lines)} characters:\n{exc.render()[:3000]}") from None
        return "error"
    return "ok"


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), st.sampled_from(ODD_TEXT),
        st.sampled_from(ODD_NUMBERS),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(ODD_TEXT)), scalars, max_size=3),
    )


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into the recipe (keys and list indices), containers included."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


DATA_OPS = ("set", "delete", "rename", "nest", "add", "stages", "field", "field", "tweak")


@st.composite
def _data_mutation(draw: Any, data: dict, ops_allowed: tuple[str, ...] = DATA_OPS) -> tuple[str, bytes]:
    """Change the parsed recipe (keys, types, values, nesting, stage list) and write it back as YAML."""
    data = copy.deepcopy(data)
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        op = draw(st.sampled_from(ops_allowed))
        path = draw(st.sampled_from(paths)) if paths else ()
        ops.append(f"{op} {'.'.join(map(str, path))}")
        if op == "field" and isinstance(data.get("stages"), list) and data["stages"]:
            target = list(draw(st.sampled_from(TEXT_FIELDS)))
            if "*" in target:
                target[1] = draw(st.integers(0, len(data["stages"]) - 1))
            node: Any = data
            for key in target[:-1]:
                if isinstance(node, list) and isinstance(key, int) and key < len(node):
                    node = node[key]
                else:
                    node = node.setdefault(key, {}) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node[target[-1]] = draw(st.sampled_from(ODD_TEXT))
            ops[-1] = f"field {'.'.join(map(str, target))}"
        elif op == "stages" and isinstance(data.get("stages"), list) and data["stages"]:
            how = draw(st.sampled_from(["repeat", "empty", "reverse", "drop"]))
            ops[-1] = f"stages {how}"
            if how == "repeat":
                data["stages"] = data["stages"] * draw(st.integers(2, 60))
            elif how == "empty":
                data["stages"] = []
            elif how == "reverse":
                data["stages"] = data["stages"][::-1]
            else:
                data["stages"].pop(draw(st.integers(0, len(data["stages"]) - 1)))
        elif op == "add":  # an unknown key, into the mapping at `path` or at the top
            mapping = _parent(data, (*path, None)) if path else data
            mapping = mapping if isinstance(mapping, dict) else data
            mapping[draw(st.one_of(st.text(max_size=10), st.sampled_from(ODD_TEXT)))] = draw(_values())
        elif not path:
            continue
        else:
            parent, key = _parent(data, path), path[-1]
            value = parent[key]
            if op == "tweak":  # a plausible value of the same type: often valid, so validate's own checks run
                if isinstance(value, bool):
                    parent[key] = not value
                elif isinstance(value, int):  # (an earlier op may have set an odd number: keep the bounds sane)
                    parent[key] = draw(st.integers(0, max(2 * value, 0) + 2))
                elif isinstance(value, float):
                    parent[key] = draw(st.floats(0, 2 * value + 1 if 0 <= value < 1e300 else 1.0))
            elif op == "set":
                parent[key] = draw(_values())
            elif op == "delete":
                del parent[key]
            elif op == "nest":
                for _ in range(draw(st.integers(1, 40))):
                    value = [value]
                parent[key] = value
            elif op == "rename" and isinstance(parent, dict):
                parent[draw(st.one_of(st.text(max_size=10), st.sampled_from(ODD_TEXT)))] = parent.pop(key)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()), width=10**6)
    return "data: " + "; ".join(ops), text.encode("utf-8", "surrogatepass")


@st.composite
def _text_mutation(draw: Any, text: str) -> tuple[str, bytes]:
    """Change the file's text or bytes: snippets of YAML syntax, raw bytes, duplicated lines, deep brackets."""
    lines = text.splitlines(keepends=True)
    op = draw(st.sampled_from(["snippet", "bytes", "duplicate", "brackets", "truncate", "alias_bomb", "replace"]))
    if op == "snippet":
        i = draw(st.integers(0, len(lines)))
        column = draw(st.integers(0, 20))
        line = lines[i] if i < len(lines) else ""
        lines[i:i + 1] = [line[:column] + draw(st.sampled_from(YAML_SNIPPETS)) + line[column:]]
        return f"text: snippet at line {i + 1}", "".join(lines).encode("utf-8", "surrogatepass")
    if op == "bytes":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        return f"text: bytes at {at}", raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if op == "duplicate":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        return f"text: line {i + 1} twice", "".join(lines).encode()
    if op == "brackets":
        n = draw(st.sampled_from([10, 31, 32, 33, 100, 3000]))
        return f"text: {n} brackets", (text + f"deep: {'[' * n}{']' * n}\n").encode()
    if op == "truncate":
        at = draw(st.integers(0, len(text)))
        return f"text: cut at {at}", text[:at].encode()
    if op == "alias_bomb":
        return "text: alias bomb", (text + ALIAS_BOMB).encode()
    i = draw(st.integers(0, len(lines) - 1))
    key, sep, _ = lines[i].partition(":")
    lines[i] = f"{key}{sep or ':'} {draw(st.sampled_from(ODD_TEXT + YAML_SNIPPETS))}\n"
    return f"text: value of line {i + 1}", "".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def _overrides(draw: Any, data: dict) -> list[str]:
    """`--set` assignments: real field paths and made-up ones, with YAML values good and bad."""
    out = []
    paths = [".".join(map(str, p)) for p in _paths(data)]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        path = draw(st.sampled_from([path, path, path + ".x", path + ".0", "stages.99.epochs", "stages.².epochs",
                                     "stages.-1", "a..b", "", ".", "name.sub", "stages.0." + "x" * 300,
                                     "stages.0.٣", path + "." + draw(st.text(max_size=6))]))
        value = draw(st.one_of(st.sampled_from(ODD_TEXT + YAML_SNIPPETS), st.text(max_size=20),
                               _values().map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())))
        out.append(draw(st.sampled_from([f"{path}={value}", f"{path}={value}", path, f"={value}"])))
    return out


@st.composite
def recipe_cases(draw: Any, bases: list[tuple[str, str]]) -> Case:
    """One mutant of a shipped recipe: its file changed, `--set` overrides added, or both."""
    name, text = draw(st.sampled_from(bases))
    data = yaml.safe_load(text)
    kind = draw(st.sampled_from(["data", "text", "set", "data+set", "tweak"]))
    mutation, content, overrides = "", text.encode(), []
    if kind in ("data", "data+set"):
        mutation, content = draw(_data_mutation(data))
    elif kind == "tweak":  # plausible changes only: more of these pass the schema and reach validate's checks
        mutation, content = draw(_data_mutation(data, ("tweak", "tweak", "delete", "stages")))
    elif kind == "text":
        mutation, content = draw(_text_mutation(text))
    if kind in ("set", "data+set"):
        overrides = draw(_overrides(data))
        mutation = f"{mutation} --set {overrides}".strip()
    return Case(name, content, overrides, mutation)
