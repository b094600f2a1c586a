"""The device an engine is tied to, read from sample board files: Orin modules share the GPU name, compute
capability and L4T line, so SM count, memory and the board model keep their engines and timing caches apart."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from edgetl.runtime.bundle_engine import same_board
from edgetl.trt.cache import board_key, engine_key, timing_cache_path
from edgetl.trt.device import board_model, describe_device, jetpack

# /etc/nv_tegra_release of JetPack 6.1 (L4T R36.4.0): the same line on every Orin module.
NV_TEGRA_RELEASE = ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
                    "DATE: Fri Sep 13 04:36:44 UTC 2024\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")

# cudaDeviceProp fields as cuda-python returns them (name as bytes); memory is the board's, shared with the CPU.
BOARDS = {
    "agx-orin-64gb": (SimpleNamespace(name=b"Orin", major=8, minor=7, multiProcessorCount=16,
                                      totalGlobalMem=64_335 << 20), "NVIDIA Jetson AGX Orin Developer Kit"),
    "orin-nano-8gb": (SimpleNamespace(name=b"Orin", major=8, minor=7, multiProcessorCount=8,
                                      totalGlobalMem=7_620 << 20), "NVIDIA Jetson Orin Nano Developer Kit"),
    "orin-nx-8gb": (SimpleNamespace(name=b"Orin", major=8, minor=7, multiProcessorCount=8,
                                    totalGlobalMem=7_620 << 20), "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"),
}


def _board_root(tmp_path: Path, board: str, model_file: str = "proc/device-tree/model") -> Path:
    root = tmp_path / board
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text(NV_TEGRA_RELEASE)
    model = root / model_file
    model.parent.mkdir(parents=True)
    model.write_bytes(BOARDS[board][1].encode() + b"\x00")  # device-tree strings end in NUL
    return root


def _device(tmp_path, board, **kw):
    prop = BOARDS[board][0]
    return describe_device(prop, trt_version="10.3.0", runtime_version=12060, driver_version=12060,
                           root=_board_root(tmp_path, board, **kw)).to_dict()


def test_board_files_are_read_under_an_injectable_root(tmp_path):
    root = _board_root(tmp_path, "orin-nano-8gb")
    assert jetpack(root).startswith("R36 (release), REVISION: 4.0") and "BOARD: generic" in jetpack(root)
    assert board_model(root) == "NVIDIA Jetson Orin Nano Developer Kit"
    assert jetpack(tmp_path / "desktop") is None and board_model(tmp_path / "desktop") is None


def test_board_model_from_the_soc_bus_when_the_device_tree_is_masked(tmp_path):
    root = _board_root(tmp_path, "agx-orin-64gb", model_file="sys/devices/soc0/machine")  # inside Docker
    assert board_model(root) == "NVIDIA Jetson AGX Orin Developer Kit"


def test_device_facts_and_cuda_versions_are_named_for_what_they_are(tmp_path):
    dev = _device(tmp_path, "agx-orin-64gb")
    assert dev["name"] == "Orin" and dev["compute_capability"] == "8.7" and dev["sm_count"] == 16
    assert dev["total_memory_bytes"] == 64_335 << 20 and dev["board"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert dev["cuda_driver"] == "12.6" and dev["cuda_python_runtime"] == "12.6"
    assert dev["cuda_runtime"] == dev["cuda_python_runtime"]  # the older key stays, with the same value


@pytest.mark.parametrize("other", ["orin-nano-8gb", "orin-nx-8gb"])
def test_an_agx_orin_engine_and_timing_cache_are_not_reused_on_another_orin(tmp_path, other):
    agx, small = _device(tmp_path, "agx-orin-64gb"), _device(tmp_path, other)
    assert (agx["name"], agx["compute_capability"], agx["jetpack"]) == (small["name"], small["compute_capability"],
                                                                         small["jetpack"])
    args = dict(onnx_sha256="a" * 64, trt_version="10.3.0", flags={"dialect": "weakly-typed"}, shapes={})
    assert engine_key(device=agx, **args) != engine_key(device=small, **args)
    paths = [timing_cache_path(tmp_path, d["name"], d["compute_capability"], d["trt_version"], board_key(d))
             for d in (agx, small)]
    assert paths[0] != paths[1]
    assert not same_board({**agx, "device": agx["name"]}, small) and same_board({**agx, "device": agx["name"]}, agx)


def test_nano_and_nx_with_the_same_sm_count_and_memory_differ_by_board_model(tmp_path):
    nano, nx = _device(tmp_path, "orin-nano-8gb"), _device(tmp_path, "orin-nx-8gb")
    assert (nano["sm_count"], nano["total_memory_bytes"]) == (nx["sm_count"], nx["total_memory_bytes"])
    assert board_key(nano) != board_key(nx)


def test_bundle_engines_without_board_facts_match_only_off_a_jetson():
    old_entry = {"device": "Orin", "compute_capability": "8.7", "trt_version": "10.3.0"}
    jetson = {"name": "Orin", "compute_capability": "8.7", "jetpack": "R36 (release), REVISION: 4.0"}
    assert not same_board(old_entry, jetson)  # cannot tell which Orin it was built on: rebuild
    desktop = {"name": "NVIDIA L4", "compute_capability": "8.9", "jetpack": None}
    assert same_board({"device": "NVIDIA L4"}, desktop)
