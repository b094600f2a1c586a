"""Run by tests/unit/train/test_distributed.py, once plainly and once under torchrun (2 processes,
gloo): fine-tunes tiny_cnn on a Fashion-MNIST subset with the shared Trainer and, on rank 0 only, saves the
weights and the result to OUT."""

import json
import sys
from pathlib import Path

import torch

from edgetl.data.datasets import load_data
from edgetl.finetune.layerwise import train_mode
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig
from edgetl.train.distributed import is_main, rank_and_world
from edgetl.train.loop import Trainer, TrainSettings, seed_everything

torch.set_num_threads(1)
out = Path(sys.argv[1])
seed_everything(0)  # the same initial weights in both runs
data = load_data(DataConfig(name="fashion_mnist", train_limit=256, eval_limit=64))
model = load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", data.label_names)
init = {k: v.clone() for k, v in model.module.state_dict().items()}
settings = TrainSettings(epochs=2, batch_size=32, lr=3e-3, seed=0, grad_clip=None)
result = Trainer(model, data.train, data.eval, settings, train_mode=train_mode("freeze")).fit()
rank, world = rank_and_world()
if is_main():
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.module.state_dict(), out / "state.pt")
    torch.save(init, out / "init.pt")
    (out / "result.json").write_text(json.dumps({"world": world, "accuracy": result.best_accuracy,
                                                 "steps": result.steps}))
