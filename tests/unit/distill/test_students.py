"""Layer-dropped students and the teacher's logit cache."""

import json

import numpy as np
import pytest
import torch

from edgetl.distill.students import drop_layers
from edgetl.distill.teacher import LogitCache, Teacher
from edgetl.errors import RecipeError
from edgetl.models.base import load_model, save_model, to_torch
from edgetl.train.loop import predict_logits

TEXTS = ["a gripping, funny film", "dull and far too long", "fine", "i loved it"]


def test_layer_dropped_student_copies_layers_and_reloads(tiny_bert, tmp_path):
    student = drop_layers(tiny_bert, [1])

    assert len(student.module.hf.bert.encoder.layer) == 1
    assert len(tiny_bert.module.hf.bert.encoder.layer) == 2  # the teacher is untouched
    t_w = tiny_bert.module.hf.bert.encoder.layer[1].attention.self.query.weight
    torch.testing.assert_close(student.module.hf.bert.encoder.layer[0].attention.self.query.weight, t_w)
    save_model(student, tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "hf_config.json").read_text())
    assert cfg["num_hidden_layers"] == 1
    again = load_model(tmp_path / "s")
    np.testing.assert_allclose(predict_logits(again, TEXTS), predict_logits(student, TEXTS), atol=1e-5)


def test_keep_layers_out_of_range_is_a_clear_error(tiny_bert):
    with pytest.raises(RecipeError, match=r"layers \[5\] do not exist; the teacher has 2 layers"):
        drop_layers(tiny_bert, [0, 5])


def test_teacher_cache_serves_second_pass_without_teacher(tiny_bert, tmp_path):
    student = drop_layers(tiny_bert, [0])
    inputs = to_torch(tiny_bert.encoder()(TEXTS))
    cache = LogitCache(tmp_path / "c.npz")
    teacher = Teacher(tiny_bert, student, cache)
    live = teacher.logits(inputs)
    passes = teacher.forward_passes
    again = teacher.logits({k: v.clone() for k, v in inputs.items()})
    teacher.close()

    assert teacher.forward_passes == passes  # served from the cache
    assert (cache.hits, cache.misses) == (4, 4)
    torch.testing.assert_close(again, live)
    assert len(LogitCache(tmp_path / "c.npz").table) == 4  # persisted for later runs


def test_teacher_with_other_labels_is_refused(tiny_bert, tiny_cnn):
    with pytest.raises(RecipeError, match="image model"):
        Teacher(tiny_cnn, tiny_bert)
