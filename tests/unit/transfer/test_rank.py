"""Scoring, ordering and checking candidates: features that separate the classes must win over noise; the
latency budget and missing source heads leave candidates out; features are what the head reads."""

import numpy as np
import pytest
import torch

from edgetl.errors import ModelError
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import ModelConfig
from edgetl.transfer.features import extract_features
from edgetl.transfer.heads import source_head
from edgetl.transfer.rank import METRICS, CandidateScore, agreement, rank, score_features


def _candidates():
    """Three 'models' on the same 300 labelled examples: features that separate the 5 classes, features
    that carry a little of the class, pure noise. The known order is separable > weak > noise."""
    rs = np.random.RandomState(0)
    y = np.arange(300) % 5
    onehot = np.eye(5)[y]
    feats = {
        "separable": np.hstack([4 * onehot, rs.randn(300, 27)]) + 0.3 * rs.randn(300, 32),
        "weak": np.hstack([0.7 * onehot, rs.randn(300, 27)]) + 0.3 * rs.randn(300, 32),
        "noise": rs.randn(300, 32),
    }
    # a source classifier whose 8 classes follow the target class for the good model, at random for noise
    z = {"separable": y, "weak": np.where(rs.rand(300) < 0.5, y, rs.randint(0, 8, 300)), "noise": rs.randint(0, 8, 300)}
    out = []
    for name, f in feats.items():
        probs = np.full((300, 8), 0.2 / 7)
        probs[np.arange(300), z[name]] = 0.8
        values, skipped = score_features(f, y, probs)
        out.append(CandidateScore(name, values, skipped, 300, 32, 0.0, 0.0, "constructed"))
    return out, y


@pytest.mark.parametrize("metric", METRICS)
def test_every_score_ranks_separable_features_over_weak_over_noise(metric):
    candidates, _ = _candidates()
    assert rank(candidates, metric).order == ["separable", "weak", "noise"]


def test_latency_budget_leaves_slow_candidates_out():
    candidates, _ = _candidates()
    for c, p50 in zip(candidates, (50.0, 5.0, 1.0), strict=True):
        c.latency_ms = {"p50": p50}
    ranking = rank(candidates, "logme", max_latency_ms=10)
    assert ranking.chosen == "weak" and ranking.order == ["weak", "noise"]
    assert "50.00 ms > max_latency_ms 10" in ranking.excluded["separable"]


def test_candidates_without_the_score_are_left_out_and_none_left_is_an_error():
    candidates, y = _candidates()
    values, skipped = score_features(np.random.RandomState(1).randn(300, 8), y, None, no_head_reason="no head here")
    candidates.append(CandidateScore("headless", values, skipped, 300, 8, 0.0, 0.0, "no head here"))
    assert "leep" not in values and skipped["leep"] == "no head here" and "logme" in values
    assert "headless" not in rank(candidates, "leep").order
    with pytest.raises(ModelError, match="no candidate can be chosen by leep") as err:
        rank(candidates[-1:], "leep")
    assert err.value.problems == ["headless: no leep: no head here"]


def test_agreement_reports_tau_and_whether_the_top_pick_is_best():
    candidates, _ = _candidates()
    result = agreement(candidates, {"separable": 0.9, "weak": 0.8, "noise": 0.3}, ["logme"])["logme"]
    assert result["kendall_tau"] == pytest.approx(1.0) and result["top_pick_is_best"]
    flipped = agreement(candidates, {"separable": 0.3, "weak": 0.8, "noise": 0.9}, ["logme"])["logme"]
    assert flipped["kendall_tau"] == pytest.approx(-1.0) and not flipped["top_pick_is_best"]
    assert flipped["top_pick_gap_points"] == pytest.approx(60.0)


def test_features_are_the_input_of_the_models_head():
    model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", ["a", "b", "c"])
    images = np.random.RandomState(0).randint(0, 255, (10, 28, 28), dtype=np.uint8)
    feats = extract_features(model, [images[:6], images[6:]])
    seen = []
    hook = model.module.head.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    with torch.no_grad():
        model.module(**{k: torch.from_numpy(v) for k, v in model.encoder()(images).items()})
    hook.remove()
    assert feats.features.shape == (10, 32) and feats.source_probs is None
    np.testing.assert_allclose(feats.features, seen[0].double().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ModelError, match="reads 7 features but the model's head receives 32"):
        extract_features(model, [images], torch.nn.Linear(7, 4))


def test_mobilenet_v2_scores_with_its_imagenet_head_and_tiny_models_have_none():
    model = load_source(ModelConfig(source="mobilenet_v2", input_size=32), "image", ["a", "b"])
    head = source_head("mobilenet_v2", model)
    assert head.classes == 1000 and "ImageNet" in head.note
    feats = extract_features(model, [np.zeros((3, 32, 32), np.uint8)], head.module)
    assert feats.source_probs.shape == (3, 1000)
    np.testing.assert_allclose(feats.source_probs.sum(1), 1.0, atol=1e-9)
    tiny = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", ["a", "b"])
    none = source_head("tiny_cnn", tiny)
    assert none.module is None and "no classification head" in none.note


def test_hf_checkpoints_score_with_their_own_head_and_bare_backbones_have_none(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=32, patch_size=8, num_labels=5)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "classifier")
    transformers.ViTModel(config).save_pretrained(tmp_path / "backbone")
    source = f"hf:{tmp_path / 'classifier'}"
    model = load_source(ModelConfig(source=source), "image", ["a", "b", "c"])  # the data has 3 labels
    head = source_head(source, model)
    assert head.classes == 5  # the checkpoint's 5-class head, read separately from the new 3-class one
    assert extract_features(model, [np.zeros((2, 32, 32), np.uint8)], head.module).source_probs.shape == (2, 5)
    bare = f"hf:{tmp_path / 'backbone'}"
    none = source_head(bare, load_source(ModelConfig(source=bare), "image", ["a", "b", "c"]))
    assert none.module is None and "no trained classifier" in none.note


def test_plain_h_score_is_skipped_where_it_saturates_and_the_shrunk_one_is_kept():
    rs = np.random.RandomState(0)
    y = np.arange(20) % 4
    values, skipped = score_features(rs.randn(20, 50), y, None, ["hscore", "hscore_reg"])
    assert "20 samples <= 50 feature dimensions" in skipped["hscore"] and "hscore_reg" in values
