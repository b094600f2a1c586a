"""Fine-tuning strategies for the `finetune` stage: which parameters train and how (full with layer-wise
control, linear probe, LoRA via peft, bottleneck adapters), forgetting control (EWC, LwF), image
augmentation, and the torchrun / DDP helpers the shared Trainer uses. Heavy imports stay inside functions.

`edgetl.finetune(model, train, eval_data, config, out)` is the public function (`api.py`, config in `config.py`)."""

from edgetl._technique import make_callable

make_callable(__name__, "edgetl.finetune.api:finetune")
