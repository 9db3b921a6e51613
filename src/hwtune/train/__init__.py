"""Built-in model families, data sets and the trainer (no decisions about what to try)."""

from hwtune.train._classifier import train_classifier
from hwtune.train._cost_features import cnn_cost_features, mlp_cost_features, nb201_cost_features
from hwtune.train._data import DATASETS, Dataset, load_arrays, load_dataset, load_digits_dataset, load_imagefolder, load_mnist, read_idx
from hwtune.train._families import FAMILIES, TRAINING_PARAMS, FamilyCostFeatures, ModelFamily, get_family
from hwtune.train._optim import OPTIMIZERS, build_optimizer
from hwtune.train._schedules import SCHEDULES, LRController
from hwtune.train._speedups import SpeedPlan, TrainerOptions
from hwtune.train._trainer import EpochReporter, TrainResult, evaluate_error
from hwtune.train._training import TRAINING_SPECS, TrainingParam, TrainingPlan, resolve_training, validate_training_space

__all__ = [
    "Dataset",
    "load_dataset",
    "load_digits_dataset",
    "load_mnist",
    "load_arrays",
    "read_idx",
    "load_imagefolder",
    "DATASETS",
    "ModelFamily",
    "FAMILIES",
    "TRAINING_PARAMS",
    "get_family",
    "FamilyCostFeatures",
    "cnn_cost_features",
    "mlp_cost_features",
    "nb201_cost_features",
    "train_classifier",
    "evaluate_error",
    "TrainResult",
    "EpochReporter",
    # issue 6: searchable training
    "TrainerOptions",
    "SpeedPlan",
    "TRAINING_SPECS",
    "TrainingParam",
    "TrainingPlan",
    "resolve_training",
    "validate_training_space",
    "OPTIMIZERS",
    "build_optimizer",
    "SCHEDULES",
    "LRController",
]

__all__.append("build_nb201")


def __getattr__(name: str) -> object:
    # the NAS-Bench-201 cell network (another module, which imports torch): loaded on first use so
    # that importing hwtune.train stays free of torch
    if name == "build_nb201":
        from hwtune.train._nb201 import build_nb201

        return build_nb201
    raise AttributeError(f"module 'hwtune.train' has no attribute {name!r}")
