"""Layer precisions from the engine inspector's JSON, in TensorRT 10.x and 11.x form."""

import json

from edgetl.trt.inspect import dtype_of, layer_precision, summarize_layers

# TensorRT 10.x, ProfilingVerbosity.DETAILED: one "Format/Datatype" string per tensor, "Bindings" list.
TRT10 = {
    "Layers": [
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /stem/Conv + /stem/Relu", "LayerType": "Reformat",
         "Inputs": [{"Name": "pixel_values", "Location": "Device", "Dimensions": [1, 3, 64, 64],
                     "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "Reformatted Input Tensor 0", "Location": "Device", "Dimensions": [1, 3, 64, 64],
                      "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
        {"Name": "/stem/Conv + /stem/Relu", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "q0", "Dimensions": [1, 3, 64, 64],
                     "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
         "Outputs": [{"Name": "a0", "Dimensions": [1, 16, 32, 32],
                      "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
        {"Name": "/block/Conv", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "a0", "Format/Datatype": "Four wide channel vectorized row major Int8 format (kCHW4)"}],
         "Outputs": [{"Name": "a1", "Format/Datatype": "Channel major FP16 format where channel % 2 == 0"}]},
        {"Name": "/pool/GlobalAveragePool", "LayerType": "CaskPooling",
         "Inputs": [{"Name": "a1", "Format/Datatype": "Channel major FP16 format where channel % 2 == 0"}],
         "Outputs": [{"Name": "a2", "Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "/head/Gemm", "LayerType": "CaskGemmMatrixMultiply",
         "Inputs": [{"Name": "a2", "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "logits", "Format/Datatype": "Row major linear FP32 format"}]},
    ],
    "Bindings": ["pixel_values", "logits"],
}

# TensorRT 11.x: "Format" and "DataType" split, "I/O Tensors" objects instead of "Bindings".
TRT11 = {
    "Layers": [
        {"Name": "/stem/Conv", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "q0", "DataType": "Int8", "Format": "Thirty-two wide channel vectorized row major (kCHW32)"}],
         "Outputs": [{"Name": "a0", "DataType": "Int8", "Format": "Thirty-two wide channel vectorized row major (kCHW32)"}]},
        {"Name": "/attn/MatMul", "LayerType": "gemm",
         "Inputs": [{"Name": "a0", "DataType": "Half", "Format": "Row major linear (kLINEAR)"},
                    {"Name": "w", "DataType": "Half", "Format": "Row major linear (kLINEAR)"}],
         "Outputs": [{"Name": "a1", "DataType": "Float", "Format": "Row major linear (kLINEAR)"}]},
        {"Name": "/gather", "LayerType": "Gather",
         "Inputs": [{"Name": "ids", "DataType": "Int64", "Format": "Row major linear (kLINEAR)"}],
         "Outputs": [{"Name": "emb", "DataType": "Float", "Format": "Row major linear (kLINEAR)"}]},
    ],
    "I/O Tensors": [{"Name": "input_ids", "IOMode": "Input", "DataType": "Int64"},
                    {"Name": "logits", "IOMode": "Output", "DataType": "Float"}],
}


def test_format_strings_of_both_versions_normalise():
    assert dtype_of("Thirty-two wide channel vectorized row major Int8 format") == "int8"
    assert dtype_of("Channel major FP16 format where channel % 2 == 0") == "fp16"
    assert dtype_of("Row major linear FP32 format") == "fp32"
    assert [dtype_of(t) for t in ("Int8", "Half", "Float", "BFloat16", "Int64", "FP8", "UInt8")] == [
        "int8", "fp16", "fp32", "bf16", "int64", "fp8", "uint8"]
    assert dtype_of("N/A due to dynamic shapes") == "unknown"


def test_trt10_summary_counts_int8_compute_layers_and_names_float_ones():
    s = summarize_layers(json.dumps(TRT10))
    assert s["layers"] == 5 and s["compute_layers"] == 4  # the Reformat is bookkeeping
    assert s["compute_by_precision"] == {"fp16": 1, "fp32": 1, "int8": 2}
    assert s["int8_layers"] == 2 and s["int8_fraction"] == 0.5
    assert s["float_compute_layers"] == ["/pool/GlobalAveragePool", "/head/Gemm"]
    assert s["by_type"]["CaskConvolution"] == 2 and s["io_tensors"] == ["pixel_values", "logits"]


def test_trt11_summary_reads_the_split_datatype_field():
    s = summarize_layers(TRT11)
    assert s["compute_by_precision"] == {"fp16": 1, "int8": 1}
    assert s["by_precision"]["fp32"] == 1  # the Gather: int64 indices in, float out -> counted by its output
    assert s["io_tensors"] == ["input_ids", "logits"]


def test_a_layer_with_mixed_inputs_counts_as_its_lowest_precision():
    layer = {"Inputs": [{"DataType": "Float"}, {"DataType": "Int8"}], "Outputs": [{"DataType": "Float"}]}
    assert layer_precision(layer) == "int8"


def test_names_only_verbosity_says_how_to_get_precisions():
    s = summarize_layers({"Layers": ["conv1", "relu1"], "Bindings": ["x", "y"]})
    assert s == {"layers": 2, "detail": "names only", "note": "build with ProfilingVerbosity.DETAILED to see layer precisions"}


def test_the_inspector_gets_the_context_as_execution_context():
    from edgetl.trt.inspect import engine_information

    class Inspector:
        __slots__ = ("execution_context",)  # IEngineInspector's Python API (10.0 on) has no `context`

        def get_engine_information(self, fmt):
            return json.dumps({"fmt": fmt, "context": self.execution_context})

    class Engine:
        def create_engine_inspector(self):
            return Inspector()

    assert json.loads(engine_information(Engine(), "ctx-with-shapes", fmt="JSON")) == {"fmt": "JSON",
                                                                                       "context": "ctx-with-shapes"}
