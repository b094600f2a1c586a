"""Knowledge distillation: a frozen teacher, loss terms for the shared Trainer (`losses.py`), students made
from the teacher (`students.py`). `KDConfig` (config.py) is the recipe block any training stage can take.

`edgetl.distill(student, teacher, train, eval_data, config, out)` is the public function (`api.py`)."""

from edgetl._technique import make_callable

make_callable(__name__, "edgetl.distill.api:distill")
