"""INT8 quantization beyond ONNX Runtime's PTQ: QAT through PyTorch's PT2E flow (torchao), Q/DQ layouts per
backend, TensorRT rule checks, per-layer sensitivity and parity of the deployed INT8 ONNX.

Light at import time: every module here imports torch / onnx inside its functions or is imported lazily by
the `quantize` stage.
"""
