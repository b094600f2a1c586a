"""Imports point down: the techniques and the layers below them never import a stage (the stages are thin
adapters over them), so `edgetl.prune(...)` and friends work without recipes or run folders; and every
contract in pyproject.toml's [tool.importlinter] holds."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import edgetl

ROOT = Path(edgetl.__file__).parent
LOWER = ["finetune", "prune", "distill", "export", "bundle", "train", "models", "data", "runtime", "adapt"]


def runtime_imports(path: Path) -> list[str]:
    """Modules imported by `path`, leaving out `if TYPE_CHECKING:` blocks (annotations only)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


@pytest.mark.parametrize("package", LOWER)
def test_techniques_and_lower_layers_never_import_a_stage(package):
    upward = {f"{p.relative_to(ROOT)}: {m}" for p in (ROOT / package).rglob("*.py")
              for m in runtime_imports(p) if m.startswith(("edgetl.stages", "edgetl.pipeline.runner"))}
    assert not upward


def test_import_contracts_hold():
    """The contracts in pyproject.toml ([tool.importlinter]): layers only point down, the runtime is torch-free.
    On failure the message is lint-imports' report: which import breaks which contract, with its line."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "lint-imports is missing: pip install -e '.[dev]' (import-linter)"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
