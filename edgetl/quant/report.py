"""Markdown sections of report.md for quantize stages: parity of each INT8 layout, the per-layer sensitivity
table (ranked) and the fallback decision. Reads only the stage metrics already in report.json."""

from __future__ import annotations

from typing import Any

TOP = 15


def quant_sections(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for s in report.get("stages", []):
        m = s.get("metrics") or {}
        if s.get("type") == "quantize" and m.get("method") == "ptq" and (m.get("fallback") or m.get("ranking")):
            lines += _ptq_lines(s["index"], m.get("ranking") or {}, m.get("fallback") or {})
        if s.get("type") != "quantize" or m.get("method") != "qat":
            continue
        lines += ["", f"## QAT (stage {s['index']})", ""]
        lines.append(f"Calibration `{m.get('calibration')}` on {m.get('calibration_samples')} examples; float accuracy "
                     f"{m.get('float_eval_accuracy', float('nan')):.4f}, fake-quant after calibration "
                     f"{m.get('fake_quant_accuracy_calibrated', float('nan')):.4f}, after QAT "
                     f"{m.get('best_eval_accuracy', float('nan')):.4f} ({m.get('steps')} steps, KD: {m.get('kd')})"
                     + ("; training lowered it, so the calibrated model was exported" if m.get("kept") == "calibrated"
                        else "") + ".")
        parity = m.get("parity") or {}
        if parity:
            lines += ["", "| layout | top-1 agreement with fake-quant torch | max abs logit diff | examples | "
                          "same file, ONNX Runtime optimizations on vs off |", "|---|---|---|---|---|"]
            for layout, p in parity.items():
                own = p.get("unoptimized_ort_agreement")
                lines.append(f"| {layout} | {p['top1_agreement']:.4f} | {p['max_abs_diff']:.3g} | {p['samples']} | "
                             + (f"{own:.4f} (max diff {p['unoptimized_ort_max_abs_diff']:.3g})" if own is not None
                                else "-") + " |")
            floor = m.get("parity_noise_floor")
            if floor:
                lines.append(f"\nFloat-rounding floors: the fake-quant torch model agrees with itself on "
                             f"{floor['top1_agreement']:.4f} of these examples when its input moves by "
                             f"{floor['relative_input_change']:g} (relative); the last column is the same kind of "
                             "drift between two ONNX Runtime executions of one file."
                             + (f" Under the rounding of ONNX Runtime's integer kernels (int32 bias grid, fixed-point "
                                f"requantization: {kf['relative_input_change']:g} relative) it agrees on "
                                f"{kf['top1_agreement']:.4f}, the bound the onnxruntime layout is held to."
                                if (kf := m.get("parity_noise_floor_onnxruntime")) else ""))
        chk = m.get("check_qdq_tensorrt")
        if chk is not None:
            lines.append(f"\n`check-qdq --target tensorrt` on the tensorrt layout: {chk['violations']} violation(s)"
                         + (f"; float by fallback: {', '.join(chk['float_nodes'])}" if chk.get("float_nodes") else "") + ".")
        sens = m.get("sensitivity")
        if sens:
            key = "sqnr_db" if sens["score"] == "sqnr" else "accuracy"
            lines += ["", f"Per-layer sensitivity ({sens['mode'].replace('_', ' ')}, {key}, {sens['samples']} examples; "
                          f"most sensitive first, top {min(TOP, len(sens['table']))} of {len(sens['table'])}):", "",
                      f"| rank | layer | op | {key} |", "|---|---|---|---|"]
            for r in sens["table"][:TOP]:
                lines.append(f"| {r['rank']} | {r['layer']} | {r['op']} | {r[key]} |")
        fb = m.get("fallback")
        if fb:
            final_drop = fb["float_accuracy"] - fb.get("accuracy", fb["steps"][-1]["accuracy"])
            tried = [s["layer"] for s in fb["steps"][1:] if not s.get("kept", True)]
            lines.append(f"\nFallback (budget: drop <= {fb['max_accuracy_drop']}): kept in float "
                         f"{', '.join(fb['float_layers']) or 'nothing'}; fake-quant drop before QAT "
                         f"{fb['steps'][0]['drop']:.4f} -> {final_drop:.4f} on {fb['samples']} examples "
                         f"({'met' if fb['budget_met'] else 'NOT met'})"
                         + (f"; tried and left INT8 (no gain): {', '.join(tried)}" if tried else "") + ".")
            if fb.get("latency_ms"):
                lines.append(_latency_line(fb["latency_ms"]))
    return lines


def _ptq_lines(index: int, rankings: dict[str, Any], fallbacks: dict[str, Any]) -> list[str]:
    lines = ["", f"## PTQ sensitivity and fallback (stage {index})"]
    for layout in dict.fromkeys([*rankings, *fallbacks]):
        ranking, fb = rankings.get(layout), fallbacks.get(layout)
        if ranking:
            lines += ["", f"{layout}: nodes by {ranking['by']} on {ranking['samples']} calibration examples (lowest "
                          f"first, top {min(TOP, len(ranking['table']))} of {ranking['nodes']}):", "",
                      "| rank | node | op | sqnr_db |", "|---|---|---|---|"]
            lines += [f"| {r['rank']} | {r['node']} | {r['op']} | {r['sqnr_db']} |" for r in ranking["table"][:TOP]]
        if not fb:
            continue
        first = fb["steps"][0]
        lines.append(f"\n{layout} fallback: budget drop <= {fb['max_accuracy_drop']} vs the FP32 file "
                     f"({fb['float_accuracy']:.4f}) on {fb['samples']} eval examples in ONNX Runtime; all INT8 "
                     f"{first['accuracy']:.4f} (drop {first['drop']:.4f}) -> {fb['accuracy']:.4f} with "
                     f"{', '.join(fb['float_nodes']) or 'nothing'} in float ({'met' if fb['budget_met'] else 'NOT met'})."
                     + (f" Pinned float by `float_nodes`: {', '.join(fb['pinned_float_nodes'])}."
                        if fb.get("pinned_float_nodes") else ""))
        if fb.get("latency_ms"):
            lines.append("\n" + _latency_line(fb["latency_ms"]))
        lines += ["", "| float nodes | accuracy | drop |", "|---|---|---|"]
        lines += [f"| {len(st['float_nodes'])} | {st['accuracy']:.4f} | {st['drop']:.4f} |" for st in fb["steps"]]
    return lines


def _latency_line(lat: dict[str, Any]) -> str:
    return (f"Latency cost: {lat['all_int8']:.3f} ms all INT8 -> {lat['with_fallback']:.3f} ms with fallback "
            f"({lat['cost_ratio']:.2f}x; {lat['note']}).")
