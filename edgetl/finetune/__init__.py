"""Fine-tuning strategies for the `finetune` stage: which parameters train and how (full with layer-wise
control, linear probe, LoRA via peft, bottleneck adapters), forgetting control (EWC, LwF), image
augmentation, and the torchrun / DDP helpers the shared Trainer uses. Heavy imports stay inside functions."""
