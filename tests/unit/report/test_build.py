from edgetl.report.build import _pick_baseline_final


def _entry(name, stage, precision, p50, layout=None):
    e = {"name": name, "stage": stage, "format": "onnx", "precision": precision, "latency_ms": {"p50": p50}}
    if layout:
        e["layout"] = layout
    return e


def test_final_is_the_fastest_cpu_artifact_of_the_last_stage_and_skips_the_tensorrt_layout():
    entries = [
        _entry("fp32", "01-export", "fp32", 1.0),
        _entry("int8_ort", "02-quantize", "int8", 0.5, "onnxruntime"),
        _entry("int8_ort_b", "02-quantize", "int8", 0.4, "onnxruntime"),
        _entry("int8_trt", "03-quantize", "int8", 0.1, "tensorrt"),
    ]
    assert _pick_baseline_final(entries) == ("fp32", "int8_ort_b")


def test_a_run_with_only_a_tensorrt_layout_still_has_a_final():
    entries = [_entry("int8_trt", "02-quantize", "int8", 2.0, "tensorrt")]
    assert _pick_baseline_final(entries) == ("int8_trt", "int8_trt")
