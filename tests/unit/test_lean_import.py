"""`import edgetl` and `edgetl --help` stay light: no torch, onnxruntime or transformers."""

import subprocess
import sys
import time

HEAVY = ("torch", "onnxruntime", "transformers", "onnx", "tensorrt")


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_edgetl_and_its_cli_do_not_import_heavy_libraries():
    mods = _imported_after("import edgetl, edgetl.cli, edgetl.runtime")
    assert not [m for m in HEAVY if m in mods]


def test_help_answers_quickly():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edgetl", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "compress" in result.stdout
    assert elapsed < 2.0, f"edgetl --help took {elapsed:.2f}s"
