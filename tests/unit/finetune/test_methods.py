"""Each method on a tiny CNN (real Fashion-MNIST) and a tiny BERT (real Rotten Tomatoes): frozen means
frozen, only the intended parameters get gradients, LoRA merges with parity, adapters round-trip."""

import numpy as np
import pytest
import torch

from edgetl.finetune import adapters, lora
from edgetl.finetune.config import FinetuneConfig
from edgetl.finetune.layerwise import train_mode
from edgetl.finetune.methods import run_method
from edgetl.models.adapters import inject
from edgetl.models.arch import head_name
from edgetl.models.base import load_model, save_model, to_torch
from edgetl.train.loop import predict_logits

MODELS = ["tiny_cnn", "tiny_bert"]


def cfg(method, **kw):
    return FinetuneConfig(method=method, epochs=1, batch_size=32, lr=1e-3, max_steps=3, **kw)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module):
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def grads_after_one_step(model, split):
    module = model.module
    train_mode("freeze")(module)  # what lora/adapter/linear_probe use by default: BN statistics kept
    module.zero_grad(set_to_none=True)
    x = to_torch(model.encoder()(split.inputs[:8]))
    torch.nn.functional.cross_entropy(module(**x), torch.from_numpy(split.labels[:8])).backward()
    return {n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("name", MODELS)
def test_linear_probe_changes_only_the_head_bit_for_bit(models, name):
    model, data = models[name]
    head = head_name(model.module)
    before = snapshot(model.module)
    out = run_method(cfg("linear_probe"), model, data, seed=0)
    moved = changed(before, model.module)
    assert moved and all(k.startswith(head + ".") for k in moved), moved  # BN buffers included: untouched
    assert out.trainable == sum(p.numel() for p in model.module.get_submodule(head).parameters())
    assert all(p.requires_grad for p in model.module.parameters())  # handed on fully trainable


@pytest.mark.parametrize("name", MODELS)
def test_cached_and_uncached_linear_probe_agree(models, name, fmnist, rt):
    model, data = models[name]
    state = snapshot(model.module)
    cached = run_method(cfg("linear_probe"), model, data, seed=0)
    head_cached = {k: v.clone() for k, v in model.module.state_dict().items() if k.startswith(head_name(model.module))}
    model.module.load_state_dict(state)
    uncached = run_method(cfg("linear_probe", linear_probe={"cache_features": False}), model, data, seed=0)
    assert cached.facts["cached_features"] and not uncached.facts["cached_features"]
    for k, v in head_cached.items():
        torch.testing.assert_close(model.module.state_dict()[k], v, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_lora_trains_only_lora_and_head_and_leaves_the_base_bit_identical(models, name):
    model, data = models[name]
    base = model.module
    head = head_name(base)
    before = snapshot(base)
    peft_model, info = lora.wrap(base, rank=4, alpha=8, dropout=0.0, targets=None)
    model.module = peft_model
    with_grad = grads_after_one_step(model, data.train)
    assert with_grad and all(("lora_" in n) or ("modules_to_save" in n) for n in with_grad), with_grad
    assert any("lora_B" in n for n in with_grad) and any("modules_to_save" in n for n in with_grad)
    from edgetl.train.loop import Trainer

    Trainer(model, data.train, data.eval, cfg("lora").settings(0), train_mode=train_mode("freeze")).fit()
    base_after = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in peft_model.state_dict().items() if "lora_" not in k and "modules_to_save" not in k}
    for k, v in before.items():
        if not k.startswith(head + "."):
            assert torch.equal(base_after[k], v), k
    assert info["targets"] > 0


@pytest.mark.parametrize("name", MODELS)
def test_lora_method_merges_with_parity_into_a_plain_trainable_model(models, name, tmp_path):
    model, data = models[name]
    total_before = model.parameter_count()
    out = run_method(cfg("lora", lora={"rank": 4, "alpha": 8}), model, data, seed=0)
    assert out.facts["merge_max_abs_diff"] <= 1e-4
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in model.module.named_modules())
    assert model.parameter_count() == total_before
    assert all(p.requires_grad for p in model.module.parameters())
    assert 0 < out.trainable < total_before
    # the merged model is an ordinary model: saves and reloads to the same outputs
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    raw = data.eval.inputs[:16]
    np.testing.assert_allclose(predict_logits(again, raw), predict_logits(model, raw), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_adapter_trains_adapters_head_and_norms_only_and_base_stays_bit_identical(models, name):
    model, data = models[name]
    head = head_name(model.module)
    before = snapshot(model.module)
    out = run_method(cfg("adapter", adapter={"train_norms": False, "reduction": 4}), model, data, seed=0)
    moved = changed(before, model.module)
    assert moved and all(k.startswith(head + ".") for k in moved), moved
    assert out.facts["adapters"] > 0 and out.facts["adapter_params"] > 0
    adapter_weights = [p for n, p in model.module.named_parameters() if ".adapter.up." in n]
    assert any(float(p.detach().abs().sum()) > 0 for p in adapter_weights)  # started at zero, trained


def test_adapter_gradients_reach_only_the_intended_parameters(tiny_bert, rt):
    module = tiny_bert.module
    spec = adapters.plan(module, style="houlsby", reduction=8, activation="relu", targets=None)
    assert len(spec["layers"]) == 4  # 2 layers x (attention output, feed-forward output)
    pf = adapters.plan(module, style="pfeiffer", reduction=8, activation="relu", targets=None)
    assert len(pf["layers"]) == 2 and all(n.endswith(".output.dense") and ".attention." not in n for n in pf["layers"])
    x = to_torch(tiny_bert.encoder()(rt.eval.inputs[:4]))
    with torch.no_grad():
        ref = module(**x)
    inject(module, spec)
    with torch.no_grad():
        torch.testing.assert_close(module(**x), ref)  # zero-initialised up-projection: same function at start
    head = head_name(module)
    for n, p in module.named_parameters():
        p.requires_grad_(".adapter." in f".{n}" or n.startswith(head + "."))
    got = grads_after_one_step(tiny_bert, rt.train)
    # up-projections start at 0, so the down-projections get no gradient yet; the up ones must
    assert {n for n in got if ".adapter." in n} == {n for n, _ in module.named_parameters() if ".adapter.up." in n}
    assert {n for n in got if ".adapter." not in n} <= {f"{head}.weight", f"{head}.bias"}


@pytest.mark.parametrize("name", MODELS)
def test_adapter_model_round_trips_and_exports_to_onnx_with_parity(models, name, tmp_path):
    from edgetl.export.onnx import check_parity, torch_to_onnx

    model, data = models[name]
    run_method(cfg("adapter", adapter={"reduction": 4}), model, data, seed=0)
    assert "adapters" in model.builder
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert sum(1 for n, _ in again.module.named_modules() if n.endswith(".adapter")) == len(model.builder["adapters"]["layers"])
    raw = data.eval.inputs[:32]
    np.testing.assert_allclose(predict_logits(again, raw), predict_logits(model, raw), atol=1e-5)
    path = tmp_path / "model.onnx"
    torch_to_onnx(again, path, 17)
    check_parity(again, path, raw, atol=1e-4, min_agreement=1.0)  # raises ExportError when ONNX disagrees
    # the adapters matter to the outputs, so the parity above proves they are in the exported graph
    with torch.no_grad():
        for n, p in again.module.named_parameters():
            if ".adapter.up." in n:
                p.zero_()
    assert np.abs(predict_logits(again, raw) - predict_logits(model, raw)).max() > 1e-3
