"""INT8 embedding tables: every Gather that reads rows of a large float table (a transformer's word embeddings,
30,522 x 384 floats in MiniLM: most of the file once the MatMuls are INT8) reads them from an int8 copy with one
scale per row, and scales only the rows it gathered:

    Gather(table) -> Mul(Cast(Gather(table_int8, ids)), Unsqueeze(Gather(row_scales, ids)))

Written here rather than with ONNX Runtime's quantizer: its QDQ Gather gives the whole table one scale (a row of
small values then keeps few levels) and puts the output on that same grid; per-row scales keep each row's own
range, and only the gathered rows are converted (a DequantizeLinear of the table would convert all of it on every
run). Weight-only: the values after the Mul are float, as every reader of the Gather expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgetl.backends.onnx_graph import opset_of

MIN_ROWS = 1024  # smaller tables (positions, token types) weigh little and are left float


def int8_embeddings(path: Path, min_rows: int = MIN_ROWS) -> dict[str, Any]:
    """Rewrite `path` in place; returns {"tables": [names], "bytes_saved": n, "max_abs_error": largest rounding
    error of a table value}."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    if (opset_of(model) or 0) < 13:  # Unsqueeze takes its axes as an input from opset 13
        return {"tables": [], "bytes_saved": 0, "max_abs_error": 0.0, "skipped": "opset < 13"}
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, int] = {}
    for n in g.node:
        for x in n.input:
            readers[x] = readers.get(x, 0) + 1
    done: list[str] = []
    saved = 0
    worst = 0.0
    new_nodes: dict[int, list[Any]] = {}
    for i, n in enumerate(g.node):
        table = inits.get(n.input[0]) if n.op_type == "Gather" and n.input else None
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        if table is None or axis != 0 or readers.get(table.name) != 1 or len(table.dims) != 2 \
                or table.dims[0] < min_rows or table.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(table)
        amax = np.abs(values).max(axis=1)
        scales = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(values / scales[:, None]), -127, 127).astype(np.int8)
        worst = max(worst, float(np.abs(q.astype(np.float32) * scales[:, None] - values).max()))
        base = table.name
        g.initializer.remove(table)
        g.initializer.extend([numpy_helper.from_array(q, f"{base}_int8"),
                              numpy_helper.from_array(scales, f"{base}_row_scale"),
                              numpy_helper.from_array(np.array([-1], np.int64), f"{base}_last_axis")])
        ids, out = n.input[1], n.output[0]
        new_nodes[i] = [
            helper.make_node("Gather", [f"{base}_int8", ids], [f"{out}_int8"], name=f"{n.name}_int8", axis=0),
            helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], name=f"{n.name}_cast",
                             to=onnx.TensorProto.FLOAT),
            helper.make_node("Gather", [f"{base}_row_scale", ids], [f"{out}_scale"], name=f"{n.name}_scale", axis=0),
            helper.make_node("Unsqueeze", [f"{out}_scale", f"{base}_last_axis"], [f"{out}_scale_col"],
                             name=f"{n.name}_scale_col"),
            helper.make_node("Mul", [f"{out}_float", f"{out}_scale_col"], [out], name=f"{n.name}_dequant"),
        ]
        done.append(base)
        saved += values.nbytes - q.nbytes - scales.nbytes
    if done:
        kept = []
        for i, n in enumerate(g.node):
            kept += new_nodes.get(i, [n])  # in place of the float Gather: the graph stays in topological order
        del g.node[:]
        g.node.extend(kept)
        onnx.save(model, str(path))
    return {"tables": done, "bytes_saved": int(saved), "max_abs_error": round(worst, 6)}
