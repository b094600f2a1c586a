"""Build dialect by TensorRT version: weakly typed + INT8/FP16 on 10.x (JetPack 6), strongly typed from 10.12."""

from types import SimpleNamespace

import pytest

from edgetl.errors import BackendUnavailableError, RecipeError
from edgetl.trt.dialect import TrtVersion, choose_dialect, has_qdq_nodes, network_flags


@pytest.mark.parametrize("text, parsed", [("10.3.0.30", (10, 3, 0)), ("11.0.0", (11, 0, 0)), ("10.12", (10, 12, 0)),
                                          ("10.13.3.9+cuda12.9", (10, 13, 3))])
def test_versions_parse_from_tensorrt_version_strings(text, parsed):
    v = TrtVersion.parse(text)
    assert (v.major, v.minor, v.patch) == parsed


def test_unreadable_version_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match="cannot read a TensorRT version from 'dev'"):
        TrtVersion.parse("dev")


def test_jetpack6_tensorrt_10_3_builds_a_qdq_model_weakly_typed_with_int8_and_fp16():
    d = choose_dialect("10.3.0.30", has_qdq=True)
    assert not d.strongly_typed and d.builder_flags == ("INT8", "FP16")
    assert "weakly typed" in d.reason and "10.3.0" in d.reason and "INT8" in d.reason


def test_a_float_model_on_10_x_gets_fp16_only_or_nothing():
    assert choose_dialect("10.8", has_qdq=False).builder_flags == ("FP16",)
    assert choose_dialect("10.8", has_qdq=False, fp16=False).builder_flags == ()
    assert choose_dialect("10.8", has_qdq=True, fp16=False).builder_flags == ("INT8",)


@pytest.mark.parametrize("version", ["10.12.0", "10.13.3", "11.0.0", "11.4.1"])
def test_newer_versions_build_strongly_typed_with_no_precision_flags(version):
    d = choose_dialect(version, has_qdq=True)
    assert d.strongly_typed and d.builder_flags == ()
    assert "strongly typed" in d.reason and "Q/DQ" in d.reason


def test_boundary_10_11_is_still_weak():
    assert not choose_dialect("10.11.0", has_qdq=True).strongly_typed


def test_forcing_a_dialect_within_what_the_version_allows():
    assert choose_dialect("10.3", has_qdq=True, choice="strong").strongly_typed
    assert choose_dialect("10.13", has_qdq=True, choice="weak").builder_flags == ("INT8", "FP16")
    with pytest.raises(RecipeError, match="removed weak typing") as err:
        choose_dialect("11.0", has_qdq=True, choice="weak")
    assert "dialect: auto" in err.value.hint


def test_tensorrt_8_is_refused_with_what_to_install():
    with pytest.raises(BackendUnavailableError, match="TensorRT 8.6.1 is too old") as err:
        choose_dialect("8.6.1", has_qdq=True)
    assert "JetPack 6" in err.value.hint


def test_network_flags_set_strongly_typed_only_when_the_enum_still_has_it():
    trt = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    assert network_flags(trt, choose_dialect("10.13", has_qdq=True)) == 1 << 1
    assert network_flags(trt, choose_dialect("10.3", has_qdq=True)) == 0
    gone = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace())  # a release that dropped the member
    assert network_flags(gone, choose_dialect("12.0", has_qdq=True)) == 0


def test_qdq_detection_on_real_onnx_graphs(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(with_qdq: bool) -> bytes:
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
        inits = []
        if with_qdq:
            nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                     helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
            inits = [numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"),
                     numpy_helper.from_array(np.array(0, dtype=np.int8), "z")]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    assert has_qdq_nodes(model(True)) and not has_qdq_nodes(model(False))
    onnx.checker.check_model(onnx.load_from_string(model(True)))
