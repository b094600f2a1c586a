import pytest

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


# recipe `targets`: each budget passes at its limit, fails just past it, and is unknown (None) when unmeasured


def _targets(**t):
    from edgetl.recipe.load import parse_recipe
    from edgetl.testing.recipes import tiny_vision_recipe

    return parse_recipe(tiny_vision_recipe(targets=t))


def _measured(acc, p50, size=None):
    return {"accuracy": acc, "latency_ms": {"p50": p50} if p50 else None, "size_bytes": size}


@pytest.mark.parametrize("target, limit, final, expect", [
    ("max_accuracy_drop", 0.01, _measured(0.89, 1.0), True),    # 0.90 -> 0.89: one point, at the limit
    ("max_accuracy_drop", 0.01, _measured(0.885, 1.0), False),  # 1.5 points
    ("min_accuracy", 0.9, _measured(0.9, 1.0), True),
    ("min_accuracy", 0.9, _measured(0.899, 1.0), False),
    ("max_latency_ms", 2.0, _measured(0.9, 2.0), True),
    ("max_latency_ms", 2.0, _measured(0.9, 2.01), False),
    ("min_speedup", 2.0, _measured(0.9, 2.0), True),            # baseline p50 4.0 ms
    ("min_speedup", 2.0, _measured(0.9, 2.1), False),
    ("max_size_mb", 1.0, _measured(0.9, 1.0, 1_000_000), True),
    ("max_size_mb", 1.0, _measured(0.9, 1.0, 1_000_001), False),
    ("min_accuracy", 0.9, _measured(None, 1.0), None),          # not measured: neither passed nor failed
    ("min_speedup", 2.0, _measured(0.9, None), None),
])
def test_each_target_passes_at_its_limit_and_fails_past_it(target, limit, final, expect):
    from edgetl.report.build import check_targets

    base = _measured(0.90, 4.0, 4_000_000)
    (row,) = check_targets(_targets(**{target: limit}), base, final)
    assert row["target"] == target and row["limit"] == limit and row["passed"] is expect


def test_no_targets_no_rows_and_every_target_is_checked():
    from edgetl.report.build import check_targets

    assert check_targets(_targets(), _measured(0.9, 4.0), _measured(0.9, 2.0)) == []
    every = {"max_accuracy_drop": 0.01, "min_accuracy": 0.5, "max_latency_ms": 10.0, "min_speedup": 1.5,
             "max_size_mb": 5.0}
    rows = check_targets(_targets(**every), _measured(0.9, 4.0, 4_000_000), _measured(0.9, 2.0, 1_000_000))
    assert {r["target"] for r in rows} == set(every) and all(r["passed"] for r in rows)
