"""INT8 embedding tables: the rewritten Gather returns each row within half a step of its own per-row grid,
the file shrinks by the table's 3/4, and tables that are small or read twice stay float."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgetl.quant.embeddings import int8_embeddings


def _model(path, rows=2000, width=32, shared=False):
    rng = np.random.default_rng(0)
    table = (rng.standard_normal((rows, width)) * rng.uniform(0.01, 2.0, (rows, 1))).astype(np.float32)  # rows of
    # very different scales: one scale for the whole table would leave the small rows a few levels
    pos = rng.standard_normal((64, width)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], name="word", axis=0),
             helper.make_node("Gather", ["pos", "pos_ids"], ["p"], name="position", axis=0),
             helper.make_node("Add", ["emb", "p"], ["out"])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    if shared:  # the table read twice (tied weights): left alone
        nodes.append(helper.make_node("Gather", ["table", "pos_ids"], ["again"], name="tied", axis=0))
        outputs.append(helper.make_tensor_value_info("again", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"]),
                       helper.make_tensor_value_info("pos_ids", TensorProto.INT64, ["b", "s"])],
        outputs, [numpy_helper.from_array(table, "table"), numpy_helper.from_array(pos, "pos")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return table, pos


def _run(path, ids, pos_ids):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"ids": ids, "pos_ids": pos_ids})[0]


def test_rows_come_back_on_their_own_grid_and_the_file_shrinks(tmp_path):
    path = tmp_path / "m.onnx"
    table, _ = _model(path)
    ids = np.random.default_rng(1).integers(0, 2000, (4, 7))
    pos_ids = np.tile(np.arange(7), (4, 1))
    before, size0 = _run(path, ids, pos_ids), path.stat().st_size

    info = int8_embeddings(path)

    after = _run(path, ids, pos_ids)
    step = np.abs(table[ids]).max(-1, keepdims=True) / 127  # each gathered row's own step
    assert np.all(np.abs(after - before) <= step / 2 + 1e-6)
    assert info["tables"] == ["table"] and info["max_abs_error"] > 0
    assert size0 - path.stat().st_size >= 0.7 * table.nbytes  # int8 + one float per row instead of float32
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Gather") == 3 and "Cast" in ops  # the position table (64 rows) is still one float Gather


def test_small_or_shared_tables_stay_float(tmp_path):
    path = tmp_path / "m.onnx"
    _model(path, shared=True)
    assert int8_embeddings(path)["tables"] == []
    small = tmp_path / "s.onnx"
    _model(small, rows=500)
    assert int8_embeddings(small)["tables"] == []
