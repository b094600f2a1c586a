"""Unsupervised domain adaptation: train on labelled source data so that the model also works on a target
domain (another camera, light or sensor) of which only unlabelled inputs are available.

- `losses`: Deep CORAL (`coral_loss`), multi-kernel MMD as in DAN (`mmd_loss`), DANN's gradient reversal,
  domain classifier and weight schedule (`grad_reverse`, `DomainClassifier`, `dann_loss`, `dann_coefficient`).
- `align`: `DomainAlignment`, one of those losses as an extra loss term of the shared Trainer, with the features
  tapped at one layer (`FeatureTap`), and `Batches` (encoded batches of raw inputs, reshuffled each pass).
- `adabn`: AdaBN, BatchNorm statistics re-estimated on target batches, no training.

Every function takes plain things (nn.Module, feature tensors, iterables of input batches) and knows nothing of
recipes or stages; the `finetune` stage's `adapt:` option is the glue (edgetl/finetune/domain.py).

Why not skada (scikit-adaptation 0.6.0, checked with `pip download --no-deps skada`): its `deep` extra requires
torchvision and skorch, and torchvision pins its own torch (PyPI's torchvision does not import beside the pinned
torch); `skada.deep.losses` imports skorch and POT, and `import skada` pulls scikit-learn, scipy and pandas. Of
what is needed here it has only the CORAL loss (a few lines); its `dan_loss` uses exp(-||x-y||/sigma) on
median-scaled distances rather than DAN's Gaussian kernels, its DANN has no weight schedule (and its default
domain classifier ends in a one-unit softmax, whose output is always 1), and it has no AdaBN.
"""

METHODS = ("coral", "mmd", "dann", "adabn")
FEATURE_METHODS = ("coral", "mmd", "dann")  # the ones that train with a loss on features
