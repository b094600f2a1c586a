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
