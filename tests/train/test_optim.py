"""Optimizers, regularisation, trainer switches and the validation of training params."""

from __future__ import annotations

import math

import pytest
import torch

from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace
from hwtune.train import (
    TRAINING_SPECS,
    TrainerOptions,
    build_optimizer,
    get_family,
    resolve_training,
    train_classifier,
    validate_training_space,
)
from hwtune.train._augment import Augmenter, random_crop, random_flip

ARCH = {"conv_layers": 1, "filters_0": 8, "kernel_0": 3, "dense_units": 32}
CHANCE_LOSS = math.log(10)  # cross-entropy of an untrained 10-class classifier


def _train(data, params, arch=ARCH, **kw):
    model = get_family("cnn").build({**arch, **params}, data.input_shape, 10)
    return train_classifier(model, data, {"epochs": 3, "batch_size": 64, **params}, seed=0, **kw)


OPTIMIZERS = [
    {"optimizer": "sgd", "momentum": 0.0, "lr": 0.5},
    {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05},
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.05},
    {"optimizer": "adagrad", "lr": 0.05},
    {"optimizer": "rmsprop", "lr": 0.003, "alpha": 0.9},
    {"optimizer": "adam", "lr": 0.01, "beta1": 0.8, "beta2": 0.99},
    {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.05, "amsgrad": True},
    {"optimizer": "sgd", "lr": 0.1, "clip_norm": 0.5, "weight_decay": 1e-4},
]


@pytest.mark.parametrize("params", OPTIMIZERS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_each_optimizer_lowers_the_loss_on_digits(digits, params):
    r = _train(digits, params)
    assert r.train_loss < 0.75 * CHANCE_LOSS, r
    assert r.error < 0.5  # chance is 0.9
    assert r.settings["plan"]["optimizer"] == params["optimizer"]


def test_optimizers_are_pytorchs_with_the_params_given():
    w = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(resolve_training({"optimizer": "sgd", "momentum": 0.8, "nesterov": True, "lr": 0.2}), w)
    assert type(opt) is torch.optim.SGD and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.8 and opt.defaults["lr"] == 0.2
    opt = build_optimizer(resolve_training({"optimizer": "adamw", "beta1": 0.7}), w)
    assert type(opt) is torch.optim.AdamW and opt.defaults["betas"] == (0.7, 0.999) and opt.defaults["weight_decay"] == 0.01
    opt = build_optimizer(resolve_training({"optimizer": "rmsprop", "momentum": 0.5, "centered": True}), w)
    assert type(opt) is torch.optim.RMSprop and opt.defaults["centered"] and opt.defaults["momentum"] == 0.5
    assert type(build_optimizer(resolve_training({"optimizer": "adagrad", "lr_decay": 0.01}), w)) is torch.optim.Adagrad
    # no optimizer given: SGD with momentum 0.9 and lr 0.05, as the trainer always did
    plan = resolve_training({})
    assert (plan.optimizer, plan.lr, plan.optimizer_kwargs["momentum"]) == ("sgd", 0.05, 0.9)


# -- validation -----------------------------------------------------------------------------------------
def _validate(space: dict) -> None:
    get_family("cnn").validate_space(SearchSpace.from_dict(space), (1, 8, 8), 10)


BAD_SPACES = [
    ("unknown optimizer", {"optimizer": "adamm"}, "space.optimizer", "unknown optimizer"),
    ("unknown optimizer choice", {"optimizer": {"type": "categorical", "choices": ["sgd", "lamb"]}}, "space.optimizer", "unknown optimizer 'lamb'"),
    ("param of another optimizer", {"optimizer": "sgd", "beta1": 0.9}, "space.beta1", "param of optimizer adam or adamw"),
    ("default optimizer is sgd", {"beta2": {"type": "float", "low": 0.9, "high": 0.999}}, "space.beta2", "optimizer is sgd"),
    ("momentum with adam", {"optimizer": "adam", "momentum": 0.9}, "space.momentum", "param of optimizer rmsprop or sgd"),
    ("condition excludes the owner", {"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                                      "beta1": {"type": "float", "low": 0.8, "high": 0.95, "condition": "optimizer == 'sgd'"}}, "space.beta1", "param of optimizer"),
    ("condition on unknown optimizer", {"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                                        "beta1": {"type": "float", "low": 0.8, "high": 0.95, "condition": "optimizer == 'adm'"}}, "space.beta1.condition", "not a known optimizer"),
    ("condition on optimizer not searched", {"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                                             "beta1": {"type": "float", "low": 0.8, "high": 0.95, "condition": "optimizer == 'adamw'"}}, "space.beta1.condition", "only ever"),
    ("negative rate", {"lr": -0.1}, "space.lr", "negative rate"),
    ("negative rate range", {"lr": {"type": "float", "low": -0.1, "high": 0.1}}, "space.lr", "outside its valid range"),
    ("negative weight decay", {"weight_decay": -1e-4}, "space.weight_decay", "negative"),
    ("momentum of one", {"momentum": 1.0}, "space.momentum", "outside"),
    ("nesterov with momentum 0", {"nesterov": {"type": "categorical", "choices": [False, True]}, "momentum": {"type": "float", "low": 0.0, "high": 0.9}}, "space.momentum", "nesterov"),
    ("switch as a range", {"lr_find": {"type": "int", "low": 0, "high": 1}}, "space.lr_find", "switch"),
    ("switch as text", {"amsgrad": "yes", "optimizer": "adam"}, "space.amsgrad", "true or false"),
    ("whole epochs", {"epochs": {"type": "float", "low": 1, "high": 3}}, "space.epochs", "whole numbers"),
    ("unknown schedule", {"schedule": "cosin"}, "space.schedule", "unknown schedule"),
    ("param of another schedule", {"schedule": "cosine", "step_gamma": 0.5}, "space.step_gamma", "param of schedule step"),
    ("crop padding without crop", {"augment": "flip", "crop_padding": 4}, "space.crop_padding", "param of augment"),
    ("unknown augmentation", {"augment": "mixup"}, "space.augment", "unknown augment"),
    ("label smoothing of one", {"label_smoothing": 1.0}, "space.label_smoothing", "outside"),
    ("batch norm as a number", {"batch_norm": 1}, "space.batch_norm", "true or false"),
]


@pytest.mark.parametrize("what, space, field, words", BAD_SPACES, ids=[b[0] for b in BAD_SPACES])
def test_misconfigured_training_params_name_the_field_and_the_fix(what, space, field, words):
    with pytest.raises(ConfigError) as e:
        _validate({"conv_layers": 1, **space})
    assert e.value.field == field, str(e.value)
    assert words in str(e.value), str(e.value)
    assert e.value.fix


def test_well_formed_training_spaces_pass():
    _validate({
        "conv_layers": 1,
        "batch_norm": {"type": "categorical", "choices": [False, True]},
        "optimizer": {"type": "categorical", "choices": ["sgd", "rmsprop", "adam", "adamw"]},
        "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
        "momentum": {"type": "float", "low": 0.5, "high": 0.99, "condition": "optimizer == 'sgd'"},
        "nesterov": {"type": "categorical", "choices": [False, True], "condition": "optimizer == 'sgd'"},
        "beta1": {"type": "float", "low": 0.8, "high": 0.95, "condition": "optimizer != 'sgd'"},  # used by adam, adamw
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "clip_norm": {"type": "float", "low": 0.5, "high": 5.0},
        "schedule": {"type": "categorical", "choices": ["constant", "cosine", "step", "onecycle", "hypergradient"]},
        "step_gamma": {"type": "float", "low": 0.1, "high": 0.9, "condition": "schedule == 'step'"},
        "warmup_epochs": {"type": "float", "low": 0.0, "high": 2.0},
        "lr_find": {"type": "categorical", "choices": [False, True]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "augment": {"type": "categorical", "choices": ["none", "crop"]},
        "crop_padding": {"type": "int", "low": 1, "high": 3, "condition": "augment == 'crop'"},
        "epochs": 2,
    })
    # a param that only some of the searched optimizers use may also be left unconditional
    _validate({"optimizer": {"type": "categorical", "choices": ["sgd", "adam"]}, "beta1": 0.9})
    # the trainer's own check, without a model family (for spaces of other families and trainers)
    validate_training_space(SearchSpace.from_dict({"optimizer": "adam", "beta2": 0.99, "my_param": 3}))
    with pytest.raises(ConfigError, match="param of optimizer adam or adamw"):
        validate_training_space(SearchSpace.from_dict({"optimizer": "rmsprop", "beta2": 0.99}))


def test_trial_params_are_checked_by_the_trainer_too():
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'") as e:
        resolve_training({"optimizer": "adamm"})
    assert e.value.field == "params.optimizer"
    with pytest.raises(ConfigError, match="param of optimizer adam or adamw") as e:
        resolve_training({"optimizer": "sgd", "beta1": 0.9})
    assert e.value.field == "params.beta1"
    with pytest.raises(ConfigError, match="negative rate"):
        resolve_training({"lr": -1.0})
    with pytest.raises(ConfigError, match="Nesterov momentum needs momentum > 0"):
        resolve_training({"nesterov": True, "momentum": 0.0})
    # the study loop is lenient where a searched choice shares an unconditional param
    plan = resolve_training({"optimizer": "sgd", "beta1": 0.9, "step_gamma": 0.5}, strict=False)
    assert plan.ignored == ("beta1", "step_gamma")
    # a huge rate is unwise, not invalid: the trainer lets the loss diverge (and reports that)
    assert resolve_training({"lr": 1e20}).lr == 1e20


def test_every_training_param_is_documented_with_a_kind():
    for name, spec in TRAINING_SPECS.items():
        assert spec.kind in ("int", "float", "bool", "choice") and spec.doc, name


def test_study_file_with_training_choices_is_validated_before_anything_is_written(tmp_path):
    from hwtune.study import parse_study_file, study_from_file

    spec = {
        "data": {"name": "digits"},
        "space": {"conv_layers": 1, "filters_0": 4, "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                  "beta1": {"type": "float", "low": 0.8, "high": 0.95, "condition": "optimizer == 'adam'"}, "epochs": 1},
        "objective": {"minimize": "error"},
        "trainer": {"amp": False, "channels_last": "auto", "compile": False},
    }
    study, build, train = study_from_file(parse_study_file(spec), storage=None)
    assert train.options.amp == "off" and train.options.channels_last == "auto"
    db = tmp_path / "x.db"
    for bad, field in (
        ({**spec, "space": {**spec["space"], "optimizer": "nadam"}}, "space.optimizer"),
        ({**spec, "trainer": {"amp": "fp8"}}, "trainer.amp"),
        ({**spec, "trainer": {"ddp_processes": 0}}, "trainer.ddp_processes"),
        ({**spec, "trainer": {"fast": True}}, "trainer.fast"),
    ):
        with pytest.raises(ConfigError) as e:
            study_from_file(parse_study_file({**bad, "storage": f"sqlite:///{db}"}))
        assert e.value.field == field, str(e.value)
    assert not db.exists()


# -- regularisation ------------------------------------------------------------------------------------
def test_batch_norm_is_an_architecture_switch_of_the_cnn(digits):
    fam = get_family("cnn")
    plain = fam.build(ARCH, (1, 8, 8), 10)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain)  # default: the network as before
    bn = fam.build({**ARCH, "batch_norm": True}, (1, 8, 8), 10)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn) == 1
    space = SearchSpace.from_dict({"batch_norm": {"type": "categorical", "choices": [False, True]}}, default_roles=fam.default_roles(["batch_norm"]))
    assert space.hardware_names() == ["batch_norm"]  # it changes the network, so its hardware cost
    r = _train(digits, {"batch_norm": True, "lr": 0.1})
    assert r.train_loss < 0.75 * CHANCE_LOSS


def test_dropout_and_label_smoothing_train(digits):
    r = _train(digits, {"dropout": 0.3, "label_smoothing": 0.1, "optimizer": "adam", "lr": 0.01})
    assert r.error < 0.5
    # label smoothing raises the floor of the loss: a confident model cannot reach zero
    assert r.train_loss > 0.1


def test_random_crop_and_flip_on_the_device():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        y = random_crop(x, 1, g)
        assert y.shape == x.shape
        # every crop is the image shifted by at most one pixel, zero-filled
        assert any(torch.equal(y[0], torch.nn.functional.pad(x[0], (1, 1, 1, 1))[:, dy : dy + 4, dx : dx + 4]) for dy in range(3) for dx in range(3))
    f = random_flip(x.repeat(32, 1, 1, 1), g)
    flipped = [bool(torch.equal(f[i], x[i % 2].flip(-1))) for i in range(64)]
    assert 10 < sum(flipped) < 54  # about half
    a = Augmenter("crop_flip", 2, "cpu", seed=3)(x)
    b = Augmenter("crop_flip", 2, "cpu", seed=3)(x)
    assert torch.equal(a, b)  # seeded
    assert torch.equal(Augmenter("crop", 2, "cpu", 0)(torch.ones(3, 5)), torch.ones(3, 5))  # flat features pass through


def test_augmented_training_runs(digits):
    r = _train(digits, {"augment": "crop", "crop_padding": 1, "lr": 0.1})
    assert r.train_loss < 0.85 * CHANCE_LOSS


# -- switches --------------------------------------------------------------------------------------------
def test_trainer_switches_and_what_is_recorded(digits):
    r = _train(digits, {"lr": 0.1}, options={"amp": "bf16", "channels_last": True, "data_on_device": False})
    sp = r.settings["speedups"]
    assert sp["amp"] == "bfloat16" and sp["channels_last"] is True and sp["data_on_device"] is False
    assert r.train_loss < 0.85 * CHANCE_LOSS
    m = r.metrics()
    assert m["train_threads"] == 1 and m["train_images_per_s"] > 0
    assert r.settings["interop_threads"] >= 1
    r = _train(digits, {"lr": 0.1}, options=TrainerOptions(amp="off", channels_last=False))
    assert r.settings["speedups"]["amp"] == "off" and r.settings["speedups"]["channels_last"] is False
    with pytest.raises(ConfigError, match="fp16 autocast is for CUDA") as e:
        _train(digits, {}, options={"amp": "fp16"})
    assert e.value.field == "trainer.amp"


def test_automatic_speedups_on_this_cpu(digits):
    from hwtune.train._speedups import cpu_has_native_bf16

    r = _train(digits, {"lr": 0.1})
    sp = r.settings["speedups"]
    if not cpu_has_native_bf16():
        assert sp["amp"] == "off"  # bf16 is only tried where the CPU computes it natively
    assert set(sp["probe_ms"]) >= {"fp32", "channels_last"}  # a conv net: the memory format was measured
    assert sp["data_on_device"] is True and sp["compile"] is False


# -- CUDA (skipped without a GPU) -----------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
def test_cuda_training_paths(digits):
    r = _train(digits, {"lr": 0.1}, device="cuda")
    sp = r.settings["speedups"]
    assert {"fp32", "bfloat16", "channels_last"} <= set(sp["probe_ms"]) and sp["data_on_device"] is True  # AMP measured
    assert r.train_loss < 0.85 * CHANCE_LOSS
    r = _train(digits, {"lr": 0.1}, device="cuda", options={"amp": "bf16"})
    assert r.settings["speedups"]["amp"] == "bfloat16" and r.train_loss < 0.85 * CHANCE_LOSS
    # fp16 with its gradient scaler, clipping (unscaled first), hypergradient, data gathered on the host
    r = _train(digits, {"lr": 0.05, "clip_norm": 1.0, "schedule": "hypergradient", "batch_norm": True},
               device="cuda", options={"amp": "fp16", "data_on_device": False, "channels_last": True})
    sp = r.settings["speedups"]
    assert sp["grad_scaler"] and sp["data_on_device"] is False and sp["channels_last"] is True
    assert math.isfinite(r.train_loss) and r.train_loss < 0.85 * CHANCE_LOSS
    r = _train(digits, {"optimizer": "adam", "lr": 0.003, "lr_find": True, "schedule": "cosine", "augment": "crop", "crop_padding": 1}, device="cuda")
    assert 1e-6 <= r.settings["lr_found"] <= 10 and r.train_loss < 0.9 * CHANCE_LOSS


@cuda
def test_cuda_compile(digits):
    r = _train(digits, {"lr": 0.1}, device="cuda", options={"compile": True})
    assert r.settings["speedups"]["compile"] == "default" and r.train_loss < 0.85 * CHANCE_LOSS
