"""Params and MACs from real runs of small graphs whose counts are known by hand."""

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

from edgetl.bench.model_stats import onnx_stats, torch_stats


def test_mlp_params_and_macs(make_mlp):
    path = make_mlp(width=32, depth=3, classes=7)
    stats = onnx_stats(path, {"x": np.zeros((1, 32), np.float32)})
    assert stats["params"] == 3 * 32 * 32 + 32 * 7
    assert stats["macs"] == 3 * 32 * 32 + 32 * 7
    batched = onnx_stats(path, {"x": np.zeros((4, 32), np.float32)})
    assert batched["macs"] == 4 * stats["macs"]  # shapes come from the real run, so the batch counts


def test_conv_and_gemm_macs(conv):
    stats = onnx_stats(conv, {"x": np.zeros((1, 3, 8, 8), np.float32)})
    assert stats["params"] == 4 * 3 * 3 * 3 + 5 * 4 + 5
    assert stats["macs"] == 4 * 8 * 8 * (3 * 3 * 3) + 4 * 5


class _Reader(CalibrationDataReader):
    def __init__(self):
        self.it = iter([{"x": np.random.default_rng(i).standard_normal((1, 32)).astype(np.float32)} for i in range(8)])

    def get_next(self):
        return next(self.it, None)


def test_int8_qdq_graph_keeps_the_fp32_counts(make_mlp, tmp_path):
    fp32 = make_mlp(width=32, depth=2, classes=4)
    int8 = tmp_path / "int8.onnx"
    quantize_static(str(fp32), str(int8), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(int8)).graph.node)
    feed = {"x": np.zeros((1, 32), np.float32)}
    a, b = onnx_stats(fp32, feed), onnx_stats(int8, feed)
    assert b["macs"] == a["macs"] == 2 * 32 * 32 + 32 * 4
    assert b["params"] == a["params"]  # scales and zero points are not parameters


def test_torch_macs_match_the_onnx_count():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(32, 32, bias=False), torch.nn.Linear(32, 4, bias=False)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    stats = torch_stats(Net(), {"x": np.zeros((1, 32), np.float32)})
    assert stats == {"params": 32 * 32 + 32 * 4, "macs": 32 * 32 + 32 * 4}
