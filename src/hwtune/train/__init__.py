"""Built-in model families, data sets and the trainer (no decisions about what to try)."""

from hwtune.train._data import Dataset, load_arrays, load_dataset, load_digits_dataset, load_mnist, read_idx
from hwtune.train._families import FAMILIES, TRAINING_PARAMS, ModelFamily, get_family
from hwtune.train._trainer import EpochReporter, TrainResult, evaluate_error, train_classifier

__all__ = [
    "Dataset",
    "load_dataset",
    "load_digits_dataset",
    "load_mnist",
    "load_arrays",
    "read_idx",
    "ModelFamily",
    "FAMILIES",
    "TRAINING_PARAMS",
    "get_family",
    "train_classifier",
    "evaluate_error",
    "TrainResult",
    "EpochReporter",
]
