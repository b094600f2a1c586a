from edgetl.report.artifact import Artifact, lineage


def _art(name, parent=None):
    return Artifact(name=name, stage="00-x", format="onnx", precision="fp32", path=f"{name}.onnx", parent=parent)


def _by_name(*arts):
    return {a.name: a for a in arts}


def test_lineage_runs_from_the_artifact_back_to_its_first_ancestor():
    arts = _by_name(_art("finetuned"), _art("onnx_fp32", "finetuned"), _art("onnx_int8", "onnx_fp32"))
    assert lineage(arts, "onnx_int8") == ["onnx_int8", "onnx_fp32", "finetuned"]
    assert lineage(arts, "finetuned") == ["finetuned"]


def test_lineage_stops_at_a_parent_that_is_not_an_artifact_of_the_run():
    arts = _by_name(_art("onnx_fp32", "hub:bert-base"), _art("onnx_int8", "onnx_fp32"))
    assert lineage(arts, "onnx_int8") == ["onnx_int8", "onnx_fp32"]
    assert lineage(arts, "missing") == []


def test_a_cycle_of_parents_stops_instead_of_looping():
    arts = _by_name(_art("a", "c"), _art("b", "a"), _art("c", "b"))
    assert lineage(arts, "c") == ["c", "b", "a"]
    assert lineage(_by_name(_art("self", "self")), "self") == ["self"]
