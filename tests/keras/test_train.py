"""Training with Keras's ``fit``: hwtune's optimizers and schedules mapped to Keras's own (one test each),
what Keras lacks refused naming the param, per-epoch reports that stop a pruned trial."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")

from hwtune.exceptions import ConfigError
from hwtune.keras import build_family, train_keras
from hwtune.keras._train import keras_optimizer
from hwtune.study import parse_study_file, study_from_file
from hwtune.train import load_dataset, resolve_training

STEPS = 10  # steps per epoch


def _opt(**params):
    plan = resolve_training({"epochs": 4, **params})
    return keras_optimizer(plan, STEPS)


def _lr_at(opt, step: int) -> float:
    lr = opt._learning_rate
    return float(lr(step)) if callable(lr) else float(lr.numpy() if hasattr(lr, "numpy") else lr)


@pytest.mark.parametrize(("params", "cls", "config"), [
    ({"optimizer": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True}, "SGD", {"momentum": 0.8, "nesterov": True}),
    ({"optimizer": "adagrad", "lr": 0.01, "eps": 1e-7}, "Adagrad", {"initial_accumulator_value": 0.0, "epsilon": 1e-7}),
    ({"optimizer": "rmsprop", "alpha": 0.95, "momentum": 0.1, "centered": True}, "RMSprop", {"rho": 0.95, "momentum": 0.1, "centered": True}),
    ({"optimizer": "adam", "beta1": 0.8, "beta2": 0.99, "amsgrad": True}, "Adam", {"beta_1": 0.8, "beta_2": 0.99, "amsgrad": True}),
    ({"optimizer": "adamw", "weight_decay": 0.02}, "AdamW", {"weight_decay": 0.02}),
    ({"optimizer": "sgd", "clip_norm": 2.0, "weight_decay": 1e-4}, "SGD", {"global_clipnorm": 2.0, "weight_decay": 1e-4}),
])
def test_each_optimizer_maps_to_keras_s_own(params, cls, config) -> None:
    opt, callbacks = _opt(**params)
    assert type(opt).__name__ == cls and callbacks == []
    got = opt.get_config()
    for k, v in config.items():
        assert got[k] == pytest.approx(v) if isinstance(v, float) else got[k] == v, k
    if "lr" in params:
        assert _lr_at(opt, 0) == pytest.approx(params["lr"])


@pytest.mark.parametrize(("params", "checks"), [
    ({"schedule": "constant"}, [(0, 1.0), (35, 1.0)]),
    ({"schedule": "step", "step_epochs": 2, "step_gamma": 0.5}, [(0, 1.0), (19, 1.0), (20, 0.5), (40, 0.25)]),
    ({"schedule": "exponential", "exp_gamma": 0.5}, [(0, 1.0), (10, 0.5), (20, 0.25)]),
    ({"schedule": "cosine", "min_lr_factor": 0.1}, [(0, 1.0), (20, 0.55), (40, 0.1)]),
    ({"schedule": "cosine", "warmup_epochs": 1.0}, [(0, 0.01), (10, 1.0), (25, 0.5)]),
    ({"schedule": "cosine_restarts", "restart_epochs": 1.0, "restart_mult": 2}, [(0, 1.0), (5, 0.5), (10, 1.0)]),
])
def test_each_schedule_maps_to_keras_s_own(params, checks) -> None:
    opt, _ = _opt(optimizer="sgd", lr=1.0, **params)
    for step, factor in checks:
        assert _lr_at(opt, step) == pytest.approx(factor, rel=1e-3, abs=1e-6), (params, step)


def test_plateau_is_keras_s_reduce_on_plateau() -> None:
    _, callbacks = _opt(optimizer="sgd", lr=0.1, schedule="plateau", plateau_factor=0.2, plateau_patience=3)
    (cb,) = callbacks
    assert type(cb).__name__ == "ReduceLROnPlateau" and cb.factor == pytest.approx(0.2) and cb.patience == 3 and cb.monitor == "val_accuracy"


@pytest.mark.parametrize(("params", "field"), [
    ({"schedule": "onecycle"}, "schedule"),
    ({"schedule": "hypergradient"}, "schedule"),
    ({"schedule": "bold_driver"}, "schedule"),
    ({"augment": "crop"}, "augment"),
    ({"lr_find": True}, "lr_find"),
    ({"optimizer": "adagrad", "lr_decay": 0.1}, "lr_decay"),
    ({"schedule": "step", "warmup_epochs": 1.0}, "warmup_epochs"),
    ({"optimizer": "adam", "weight_decay": 0.01}, "weight_decay"),
])
def test_what_keras_lacks_is_an_error_naming_the_param(params, field) -> None:
    with pytest.raises(ConfigError) as e:
        train_keras(None, None, params)
    assert e.value.field == field and "keras" in e.value.problem


SPACE = {"filters_0": {"type": "int", "low": 2, "high": 8}, "epochs": 1}


@pytest.mark.parametrize(("extra", "field"), [
    ({"schedule": {"type": "categorical", "choices": ["constant", "onecycle"]}}, "space.schedule"),
    ({"augment": "flip"}, "space.augment"),
    ({"prune_ratio": {"type": "float", "low": 0.0, "high": 0.5}}, "space.prune_ratio"),
    ({"quantize": {"type": "categorical", "choices": ["none", "int8"]}}, "space.quantize"),
])
def test_a_keras_study_refuses_them_before_it_starts(extra, field) -> None:
    spec = parse_study_file({"framework": "keras", "space": {**SPACE, **extra}})
    with pytest.raises(ConfigError) as e:
        study_from_file(spec, storage=None)
    assert e.value.field == field and "framework: torch" in (e.value.fix or "")


def test_a_pruned_trial_stops_at_the_epoch_it_is_pruned() -> None:
    data = load_dataset("digits", seed=0)
    seen = []

    def report(epoch: int, error: float) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise optuna.TrialPruned("stop")

    model = build_family("mlp", {"hidden_layers": 1, "units": 16}, data.input_shape, data.num_classes)
    with pytest.raises(optuna.TrialPruned):
        train_keras(model, data, {"epochs": 5, "optimizer": "adam", "lr": 0.01}, reporter=report)
    assert seen == [1, 2]


def test_training_is_seeded_and_labelled() -> None:
    data = load_dataset("digits", seed=0)
    p = {"hidden_layers": 1, "units": 16, "epochs": 2, "optimizer": "adamw", "lr": 0.01, "schedule": "cosine", "dropout": 0.2, "label_smoothing": 0.1}
    a, settings = train_keras(build_family("mlp", p, data.input_shape, data.num_classes), data, p, seed=5)
    b, _ = train_keras(build_family("mlp", p, data.input_shape, data.num_classes), data, p, seed=5)
    assert a["error"] == pytest.approx(b["error"]) and a["train_loss"] == pytest.approx(b["train_loss"])
    assert math.isfinite(a["test_error"]) and a["error"] < 0.5
    assert settings["framework"] == "keras" and settings["keras_backend"] and settings["optimizer_class"] == "AdamW"
    assert np.isclose(settings["plan"]["label_smoothing"], 0.1)
