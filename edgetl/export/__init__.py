"""Export of PyTorch models to deployable files: ONNX with a parity check against torch (`onnx.py`)."""
