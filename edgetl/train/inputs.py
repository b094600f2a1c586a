"""What a technique function receives, made uniform: the model as an EdgeModel and the data as a DataBundle
(edgetl.models.custom and edgetl.data.inputs say which forms are accepted)."""

from __future__ import annotations

from typing import Any

from edgetl.data.datasets import DataBundle
from edgetl.data.inputs import as_data
from edgetl.errors import DataError
from edgetl.models.base import EdgeModel
from edgetl.models.custom import edge_model


def prepare(model: Any, train: Any, eval_data: Any = None, *,
            labels: list[str] | None = None) -> tuple[EdgeModel, DataBundle]:
    """`labels`: class names; default the DataBundle's, an EdgeModel's, or "0".."N-1" for N model outputs."""
    data = as_data(train, eval_data, label_names=labels)
    named = labels or (data.label_names if isinstance(train, DataBundle) else None)
    if named is None and isinstance(model, EdgeModel):
        named = model.label_names
    em = edge_model(model, label_names=named, task=data.task)
    if not isinstance(train, DataBundle):
        top = int(max(data.train.labels.max(initial=0), data.eval.labels.max(initial=0)))
        if top >= em.num_labels:
            raise DataError(f"the data holds label {top} but {em.source} outputs only {em.num_labels} logits",
                            hint="size the model's classification head to the number of classes")
        data.label_names = list(em.label_names)
    return em, data
