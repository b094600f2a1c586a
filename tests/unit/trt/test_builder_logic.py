"""The builder's plain parts: sizes, parser error text, where the axis names come from, profile checks."""

import json

import pytest

from edgetl.errors import RecipeError
from edgetl.trt.builder import _merge_names, onnx_description, parse_workspace, parser_error_text
from edgetl.trt.runner import profile_violation


@pytest.mark.parametrize("text, size", [("1024", 1 << 30), ("512M", 512 << 20), ("2G", 2 << 30), ("1.5GiB", 3 << 29),
                                        (256, 256 << 20)])
def test_workspace_sizes(text, size):
    assert parse_workspace(text) == size


@pytest.mark.parametrize("text", ["lots", "1X", "8"])
def test_bad_or_tiny_workspace_is_refused(text):
    with pytest.raises(RecipeError, match="--workspace"):
        parse_workspace(text)


class ParserError:
    """Shaped like tensorrt.ParserError (code(), desc(), node(), node_name(), node_operator(), file(), line(), func())."""

    class Code:
        name = "UNSUPPORTED_NODE"

    def code(self):
        return self.Code()

    def desc(self):
        return "Assertion failed: zeroPt must be all zeros (TRT only supports symmetric quantization)"

    def node(self):
        return 12

    def node_name(self):
        return "/stem/Conv_quant"

    def node_operator(self):
        return "QuantizeLinear"

    def file(self):
        return "onnxOpImporters.cpp"

    def line(self):
        return 1234

    def func(self):
        return "importQuantizeLinear"

    def local_function_stack(self):
        return []


def test_parser_errors_are_shown_in_full():
    text = parser_error_text(ParserError())
    assert text == ("node 12 (QuantizeLinear '/stem/Conv_quant'): UNSUPPORTED_NODE: Assertion failed: zeroPt must be "
                    "all zeros (TRT only supports symmetric quantization) [onnxOpImporters.cpp:1234 importQuantizeLinear]")


def test_axis_names_come_from_the_sidecar_then_the_graph(tmp_path):
    from onnx import TensorProto, helper, save

    g = helper.make_graph([helper.make_node("Relu", ["input_ids"], ["y"])], "g",
                          [helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["batch", "sequence"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])])
    path = tmp_path / "model.onnx"
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    inputs, task, length = onnx_description(path)
    assert inputs == [{"name": "input_ids", "shape": ["batch", "sequence"]}] and task is None
    (tmp_path / "model.json").write_text(json.dumps({"task": "text", "preprocessing": {"max_length": 48},
                                                     "info": {"io": {"inputs": inputs}}}))
    assert onnx_description(path) == (inputs, "text", 48)


def test_tensorrt_shapes_get_the_onnx_axis_names():
    merged = _merge_names([{"name": "x", "shape": ["batch", 3, "height"]}], [{"name": "x", "shape": [-1, 3, -1]}])
    assert merged == [{"name": "x", "shape": ["batch", 3, "height"]}]
    assert _merge_names(None, [{"name": "x", "shape": [-1, 3]}]) == [{"name": "x", "shape": [-1, 3]}]


def test_inputs_outside_the_profile_are_explained():
    assert profile_violation("x", (4, 3), (1, 3), (8, 3)) is None
    assert "outside the engine's profile (1, 3)..(8, 3) (dimension 0)" in profile_violation("x", (9, 3), (1, 3), (8, 3))
    assert "has 1 dimensions" in profile_violation("x", (9,), (1, 3), (8, 3))


# --- the TensorRT calls build_engine makes, faked (no GPU here); the logic around them is the real one


class FakeTrt:
    """The slice of the `tensorrt` module build_engine touches before the build, shaped like TensorRT 10.3."""

    __version__ = "10.3.0"

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return object()

    class OnnxParser:
        """Refuses what is not a ModelProto, as TensorRT's parser does, with its error list."""

        def __init__(self, network, logger):
            self.errors = []

        def parse_from_file(self, path):
            self.errors = [f"ModelImporter.cpp:75 In function parseFromFile: failed to parse ONNX model from {path}"]
            return False

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]


def test_a_corrupt_onnx_gets_the_parsers_error_list_not_a_protobuf_error(tmp_path, monkeypatch):
    from edgetl.errors import ExportError
    from edgetl.trt import device
    from edgetl.trt.builder import BuildOptions, build_engine

    monkeypatch.setattr(device, "require_tensorrt", lambda: FakeTrt)
    monkeypatch.setattr(device, "device_info", lambda: device.DeviceInfo("Orin", "8.7", "10.3.0"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")  # tests/gpu/test_tensorrt.py's bytes: onnx.load raises DecodeError on them
    with pytest.raises(ExportError, match="could not parse") as err:
        build_engine(bad, tmp_path / "bad.plan", BuildOptions(cache_dir=tmp_path / "cache"))
    assert err.value.problems and "failed to parse ONNX model" in err.value.problems[0]


def test_onnx_description_of_a_corrupt_file_is_empty_not_an_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    assert onnx_description(bad) == (None, None, None)


class FakeConfig:
    """IBuilderConfig's timing-cache calls: create_timing_cache returns None for bytes it cannot read (as
    TensorRT's createTimingCache returns nullptr) and set_timing_cache refuses a cache of another device."""

    def __init__(self, readable=True, same_device=True):
        self.readable, self.same_device, self.attached = readable, same_device, None

    def create_timing_cache(self, blob):
        if blob and not self.readable:
            return None
        return {"blob": bytes(blob)}

    def set_timing_cache(self, cache, ignore_mismatch):
        if not isinstance(cache, dict):
            raise TypeError("set_timing_cache(): incompatible function arguments")  # what pybind11 says to None
        if cache["blob"] and not self.same_device and not ignore_mismatch:
            return False
        self.attached = cache
        return True


@pytest.mark.parametrize("config, blob, loaded", [
    (FakeConfig(), b"saved", b"saved"),
    (FakeConfig(readable=False), b"truncated", b""),
    (FakeConfig(same_device=False), b"other-gpu", b""),
    (FakeConfig(), b"", b""),
])
def test_timing_cache_is_loaded_or_started_fresh(tmp_path, config, blob, loaded):
    from edgetl.trt.builder import attach_timing_cache

    assert attach_timing_cache(config, blob, tmp_path / "x.cache") is True
    assert config.attached == {"blob": loaded}
