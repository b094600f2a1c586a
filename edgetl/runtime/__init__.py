"""Light runtime for deployed bundles: numpy + onnxruntime (or tensorrt), never torch."""
