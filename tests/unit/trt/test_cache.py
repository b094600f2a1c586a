"""Engine cache keys change with everything that shapes an engine, and only with that; timing caches are per
GPU / SM / TensorRT version; the engine cache refuses damaged entries."""

import pytest

from edgetl.trt.cache import EngineCache, cache_root, engine_key, timing_cache_path

BASE = dict(
    onnx_sha256="a" * 64, trt_version="10.3.0",
    device={"name": "Orin", "compute_capability": "8.7", "jetpack": "R36 (release), REVISION: 4.0"},
    flags={"dialect": "weakly-typed", "builder_flags": ["INT8", "FP16"], "workspace_bytes": 1 << 30,
           "optimization_level": None},
    shapes={"pixel_values": {"min": [1, 3, 64, 64], "opt": [1, 3, 64, 64], "max": [32, 3, 64, 64]}},
)


def _key(**changes):
    args = {**BASE, **changes}
    return engine_key(**args)


def test_same_inputs_same_key_and_flag_order_does_not_matter():
    assert _key() == _key()
    flipped = {**BASE["flags"], "builder_flags": ["FP16", "INT8"]}
    assert _key(flags=flipped) == _key()
    assert _key(device={**BASE["device"], "cuda_runtime": "12.6"}) == _key()  # not part of the key
    assert _key(device={**BASE["device"], "cuda_driver": "12.6"}) == _key()


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "b" * 64},
    {"trt_version": "10.3.1"},
    {"device": {**BASE["device"], "name": "NVIDIA H100 80GB HBM3"}},
    {"device": {**BASE["device"], "compute_capability": "8.6"}},
    {"device": {**BASE["device"], "jetpack": "R36 (release), REVISION: 3.0"}},
    {"device": {**BASE["device"], "sm_count": 8}},
    {"device": {**BASE["device"], "total_memory_bytes": 7_620 << 20}},
    {"device": {**BASE["device"], "board": "NVIDIA Jetson Orin Nano Developer Kit"}},
    {"flags": {**BASE["flags"], "builder_flags": ["INT8"]}},
    {"flags": {**BASE["flags"], "dialect": "strongly-typed", "builder_flags": []}},
    {"flags": {**BASE["flags"], "workspace_bytes": 2 << 30}},
    {"shapes": {"pixel_values": {"min": [1, 3, 64, 64], "opt": [8, 3, 64, 64], "max": [32, 3, 64, 64]}}},
])
def test_each_part_of_the_key_changes_it(change):
    assert _key(**change) != _key()


def test_timing_cache_file_per_gpu_sm_and_tensorrt_version(tmp_path):
    a = timing_cache_path(tmp_path, "Orin", "8.7", "10.3.0")
    assert a.name == "orin-sm87-trt10.3.0.cache" and a.parent == tmp_path / "timing"
    others = {timing_cache_path(tmp_path, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0"),
              timing_cache_path(tmp_path, "Orin", "8.6", "10.3.0"), timing_cache_path(tmp_path, "Orin", "8.7", "10.4.0")}
    assert a not in others and len(others) == 3


def test_cache_root_follows_edgetl_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGETL_CACHE", str(tmp_path))
    assert cache_root() == tmp_path / "trt"
    assert cache_root(tmp_path / "x") == tmp_path / "x"


def test_engine_cache_round_trip_and_damaged_entries_are_rebuilt(tmp_path):
    cache = EngineCache(tmp_path)
    key = _key()
    assert cache.get(key) is None
    path = cache.put(key, b"engine-bytes", {"layers": {"int8_layers": 3}})
    plan, meta = cache.get(key)
    assert plan == path and plan.read_bytes() == b"engine-bytes" and meta["layers"]["int8_layers"] == 3
    plan.write_bytes(b"engine-bytez")  # a half-written or tampered engine
    assert cache.get(key) is None
