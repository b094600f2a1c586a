"""Transferability estimation: score candidate pretrained models on a labelled target set from frozen
features (LogME, LEEP, NCE, H-score) instead of fine-tuning each one, and pick the best.

`scores` holds the metrics on plain arrays, `features` runs a model to get them, `rank` scores, times and
orders candidates and checks a ranking against fine-tuned accuracy. Nothing here knows recipes or stages.
"""
