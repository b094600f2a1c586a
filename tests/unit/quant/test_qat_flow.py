"""The QAT building blocks on tiny_cnn and real Fashion-MNIST images: prepare -> calibrate -> convert ->
export (tensorrt layout) -> derived onnxruntime layout, sensitivity and fallback."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")


@pytest.fixture(scope="module")
def setup():
    from edgetl.data.datasets import load_data
    from edgetl.models.base import to_torch
    from edgetl.models.zoo import load_source
    from edgetl.recipe.schema import DataConfig, ModelConfig

    torch.manual_seed(0)
    data = load_data(DataConfig(name="fashion_mnist", train_limit=64, eval_limit=64))
    model = load_source(ModelConfig(source="tiny_cnn", pretrained=False), "image", data.label_names)
    enc = model.encoder()
    batches = [to_torch(enc(data.train.inputs[i : i + 16])) for i in range(0, 64, 16)]
    return model, data, batches, to_torch(enc(data.train.inputs[:2]))


@pytest.fixture(scope="module")
def calibrated(setup):
    from edgetl.quant import calibrate as cal
    from edgetl.quant import qat

    model, data, batches, example = setup
    gm, quantizer = qat.prepare(model, example)
    cal.calibrate(gm, batches, "max")
    return gm, quantizer


def test_quantizer_follows_tensorrt_rules_in_torch(setup, calibrated):
    from edgetl.quant.calibrate import fake_quants
    from edgetl.quant.sensitivity import sqnr_db

    model, data, batches, _ = setup
    gm, quantizer = calibrated
    assert quantizer.annotated_layers == ["stem.0", "block.0", "block.3", "dw.0", "dw.3", "head"]
    acts, weights = fake_quants(gm)
    assert len(weights) == 6
    for fq in list(acts.values()) + list(weights.values()):
        assert torch.all(fq.zero_point == 0)
    assert all(fq.scale.numel() > 1 and fq.ch_axis == 0 for fq in weights.values())
    assert all(fq.scale.numel() == 1 and not fq.observer_enabled[0] for fq in acts.values())  # frozen ranges
    with torch.no_grad():
        ref = model.module(**batches[0]).numpy()
        out = gm(**batches[0]).numpy()
    assert 10 < sqnr_db(ref, out) < 80  # quantized (not identical), but close to the float model


def test_export_both_layouts(setup, calibrated, tmp_path):
    import copy

    from onnxruntime.quantization import QuantType

    from edgetl.quant import qat
    from edgetl.quant.check_qdq import check_qdq
    from edgetl.quant.layouts import derive_onnxruntime, export_converted, strip_qdq
    from edgetl.runtime.ort import make_session

    model, data, batches, example = setup
    gm = copy.deepcopy(calibrated[0])
    with torch.no_grad():
        fq_logits = gm(**batches[1]).numpy()
        converted = qat.convert(gm)
    trt = tmp_path / "trt.onnx"
    info = export_converted(converted, example, trt, "image")
    assert info["opset"] >= 13
    proto = onnx.load(str(trt))
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim][0] == "batch"
    assert proto.graph.output[0].name == "logits"
    assert check_qdq(trt) == []
    # adaptive_avg_pool2d exports as GlobalAveragePool (ONNX Runtime has an NHWC int8 kernel for it; ReduceMean
    # would cost a transpose of the last feature map back to NCHW)
    assert [n.op_type for n in proto.graph.node if n.op_type in ("ReduceMean", "GlobalAveragePool")] == [
        "GlobalAveragePool"]
    x = batches[1]["pixel_values"].numpy()
    got = make_session(trt).run(None, {"pixel_values": x})[0]  # batch 16 though exported at 2: dynamic
    assert np.abs(got - fq_logits).max() < 1e-4

    stripped = strip_qdq(trt)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in stripped.model.graph.node)
    assert len(stripped.act_scales) == 6  # 5 conv/linear inputs (one shared) + the residual Add input
    ort = tmp_path / "ort.onnx"
    np_batches = [{k: v.numpy() for k, v in b.items()} for b in batches]
    res = derive_onnxruntime(trt, ort, np_batches, task="image", op_types=None, activation_type=QuantType.QUInt8,
                             weight_type=QuantType.QInt8, reduce_range=False)
    assert res["trained_ranges"] == 6
    ort_proto = onnx.load(str(ort))
    assert check_qdq(ort_proto)  # ONNX Runtime's layout is not TensorRT's: u8, Q/DQ on outputs
    # the trained activation scale of the network input is what ONNX Runtime's u8 grid uses
    scale_in = stripped.act_scales["pixel_values"]
    q_in = next(n for n in ort_proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "pixel_values")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in ort_proto.graph.initializer}
    # rmin/rmax = -128 s, 127 s on a u8 grid: (127 s + 128 s) / 255 = s, the trained scale itself
    assert float(inits[q_in.input[1]]) == pytest.approx(scale_in, rel=1e-4)
    got_ort = make_session(ort).run(None, {"pixel_values": x})[0]
    assert (got_ort.argmax(-1) == fq_logits.argmax(-1)).mean() >= 0.9


def test_fallback_layer_stays_float_inside_onnx_runtime(setup, tmp_path):
    """A layer kept in float between INT8 layers must run in float: ONNX Runtime's optimizer would otherwise give
    it per-tensor int8 weights of its own (DQ -> Conv with a float weight -> QLinearConv)."""
    from onnxruntime.quantization import QuantType

    from edgetl.quant import calibrate as cal
    from edgetl.quant import qat
    from edgetl.quant.layouts import derive_onnxruntime, export_converted
    from edgetl.runtime.ort import make_session

    model, data, batches, example = setup
    gm, quantizer = qat.prepare(model, example, {"dw.3"})
    cal.calibrate(gm, batches, "max")
    trt, ort = tmp_path / "trt.onnx", tmp_path / "ort.onnx"
    with torch.no_grad():
        fq_logits = gm(**batches[1]).numpy()
        export_converted(qat.convert(gm), example, trt, "image")
    res = derive_onnxruntime(trt, ort, [{k: v.numpy() for k, v in b.items()} for b in batches], task="image",
                             op_types=None, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                             reduce_range=False)
    assert res["float_nodes_shielded"] == 1
    optimized = tmp_path / "optimized.onnx"
    import onnxruntime

    so = onnxruntime.SessionOptions()
    so.optimized_model_filepath = str(optimized)
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable graph to read
    x = batches[1]["pixel_values"].numpy()
    onnxruntime.InferenceSession(str(ort), so, providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})
    ops = [n.op_type for n in onnx.load(str(optimized)).graph.node]
    assert ops.count("QLinearConv") == 4  # stem.0, block.0, block.3, dw.0; dw.3 is a float convolution
    assert sum(op in ("Conv", "FusedConv") for op in ops) == 1
    got = make_session(ort).run(None, {"pixel_values": x})[0]
    assert (got.argmax(-1) == fq_logits.argmax(-1)).mean() >= 0.9


def test_sensitivity_and_fallback(setup, calibrated):
    from edgetl.quant import qat
    from edgetl.quant.sensitivity import choose_fallback, layer_sensitivity

    model, data, batches, example = setup
    gm = calibrated[0]
    layers = qat.layers_of(gm)
    rows = layer_sensitivity(gm, layers, batches[:1], mode="one_at_a_time", score="sqnr")
    assert [r["rank"] for r in rows] == list(range(1, 7))
    assert rows[0]["sqnr_db"] <= rows[-1]["sqnr_db"]
    # only the second-ranked layer helps "accuracy" here: the first goes back to INT8, the second stays float,
    # the search stops after 2 x max_layers = 4 tries, and a budget of 0 drop is reported as not met
    helps = next(layer for layer in layers if layer.name == rows[1]["layer"])

    def accuracy(m):
        return 0.5 if int(m.get_submodule(helps.weight).fake_quant_enabled[0]) == 0 else 0.25

    fb = choose_fallback(gm, layers, rows, accuracy, 1.0, 0.0, max_layers=2)
    assert fb["float_layers"] == [rows[1]["layer"]]
    assert [s.get("kept") for s in fb["steps"][1:]] == [False, True, False, False]
    assert fb["budget_met"] is False and fb["accuracy"] == 0.5
    gm2, quantizer = qat.prepare(model, example, set(fb["float_layers"]))
    assert set(quantizer.annotated_layers) == {r["layer"] for r in rows} - set(fb["float_layers"])


class LiteNet(torch.nn.Module):
    """What sets EfficientNet-Lite apart from MobileNetV2 for ONNX Runtime's int8 layout, in a few layers: a ReLU6
    in front of the zero "same" padding of a strided depthwise conv whose weights are large (as BatchNorm folding
    leaves them in EfficientNet), a Swish, and the pooling after it."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU6())
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.dw = nn.Sequential(nn.Conv2d(width, width, 3, 2, groups=width), nn.ReLU6())
        self.pw = nn.Conv2d(width, 2 * width, 1)
        self.head = nn.Linear(2 * width, num_classes)
        with torch.no_grad():
            self.dw[0].weight.mul_(8.0)

    def forward(self, pixel_values):
        x = self.pw(self.dw(self.pad(self.stem(pixel_values))))
        x = x * torch.sigmoid(x)
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _layer_inputs(path, x) -> list[np.ndarray]:
    """The activation input of every Conv/Gemm, as ONNX Runtime computes it with the graph as written, zero-padded
    by the Conv's own `pads` (a Pad node folded into the conv reads the same values)."""
    import onnxruntime

    proto = onnx.load(str(path))
    layers = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    names = [n.input[0] for n in layers]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    so = onnxruntime.SessionOptions()
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out = []
    for node, value in zip(layers, session.run(names, {"pixel_values": x}), strict=True):
        pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), None)
        if pads:
            k = len(pads) // 2
            value = np.pad(value, [(0, 0), (0, 0), *zip(pads[:k], pads[k:], strict=True)])
        out.append(value)
    return out


def test_onnxruntime_layout_rounds_like_qat_behind_padding_relu6_and_swish(setup, tmp_path):
    from onnxruntime.quantization import QuantType

    from edgetl.models.base import EdgeModel, to_torch
    from edgetl.quant import calibrate as cal
    from edgetl.quant import qat
    from edgetl.quant.layouts import derive_onnxruntime, export_converted
    from edgetl.runtime.ort import make_session
    from edgetl.runtime.preprocess import Preprocessing

    _, data, _, _ = setup
    torch.manual_seed(0)
    pre = Preprocessing(kind="image", input_names=["pixel_values"], size=32)
    model = EdgeModel(LiteNet().eval(), "image", pre, list(data.label_names), {"kind": "module"}, "test")
    enc = model.encoder()
    batches = [to_torch(enc(data.train.inputs[i : i + 16])) for i in range(0, 64, 16)]
    gm, _ = qat.prepare(model, batches[0])
    cal.calibrate(gm, batches, "max")
    x = enc(data.eval.inputs)["pixel_values"]
    trt, ort = tmp_path / "trt.onnx", tmp_path / "ort.onnx"
    with torch.no_grad():
        fq_logits = gm(pixel_values=torch.from_numpy(x)).numpy()
        export_converted(qat.convert(gm), batches[0], trt, "image")
    res = derive_onnxruntime(trt, ort, [{k: v.numpy() for k, v in b.items()} for b in batches], task="image",
                             op_types=None, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                             reduce_range=False)
    # every layer reads the values QAT trained it on: the padded ReLU6 output on QAT's grid (step s from 0, 128
    # levels), the pooled Swish output rounded once; ONNX Runtime's own grids differed on about half of them
    for want, got in zip(_layer_inputs(trt, x), _layer_inputs(ort, x), strict=True):
        assert np.mean(np.abs(want - got) > 1e-4 * np.abs(want).max()) < 0.01
    # the conv in front of the Swish keeps a float output (ONNX Runtime cannot fuse Swish into its int8 conv), no
    # Sigmoid/Mul reads a rounded tensor, and the logits are the Gemm's float output
    proto = onnx.load(str(ort))
    producer = {o: n for n in proto.graph.node for o in n.output}
    assert len(res["float_output_layers"]) == 1
    for n in proto.graph.node:
        if n.op_type in ("Sigmoid", "Mul"):
            assert all(producer[i].op_type != "DequantizeLinear" for i in n.input if i in producer), n.name
    assert producer["logits"].op_type == "Gemm"
    # the "same" padding in front of the strided conv went into that conv's pads: no float Pad between Q/DQ
    assert res["pads_folded_into_convs"] == 1 and not any(n.op_type == "Pad" for n in proto.graph.node)
    got = make_session(ort).run(None, {"pixel_values": x})[0]
    assert (got.argmax(-1) == fq_logits.argmax(-1)).all() and np.abs(got - fq_logits).max() < 0.01
