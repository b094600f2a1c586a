"""Knowledge distillation: a frozen teacher, loss terms for the shared Trainer (`losses.py`), students made
from the teacher (`students.py`). `KDConfig` (config.py) is the recipe block any training stage can take."""
