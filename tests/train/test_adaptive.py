"""Adaptive learning rates: the range test, hypergradient descent, the bold driver."""

from __future__ import annotations

import math

import pytest
import torch

from hwtune.train import get_family, train_classifier
from hwtune.train._adaptive import BoldDriverLR, HypergradientLR, lr_range_test

ARCH = {"conv_layers": 1, "filters_0": 8, "kernel_0": 3, "dense_units": 32}


def _train(data, params, **kw):
    model = get_family("cnn").build(ARCH, data.input_shape, 10)
    return train_classifier(model, data, {"epochs": 3, "batch_size": 64, **params}, seed=0, record_lr=True, **kw)


def test_range_test_min10_takes_a_tenth_of_the_rate_of_the_lowest_loss():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)

    def step() -> float:  # a loss that falls as the rate grows to 0.1, then blows up
        lr = opt.param_groups[0]["lr"]
        return 1.0 / (1 + lr * 100) if lr <= 0.1 else 1.0 / 11 * (lr / 0.1) ** 3

    lr, history = lr_range_test(step, opt, steps=200, smoothing=0.0, rule="min10")
    assert lr == pytest.approx(0.01, rel=0.1)
    assert history[-1][0] < 10  # stopped once the loss diverged
    lr, _ = lr_range_test(lambda: math.nan, opt)  # diverges at once: the smallest rate
    assert lr == 1e-6


def test_range_test_steepest_fall():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)

    def step() -> float:  # flat until 1e-3, falls fastest (per log-rate) around 1e-2, lowest at 0.1, then blows up
        x = math.log10(opt.param_groups[0]["lr"])
        return 2.0 - 1.0 / (1 + math.exp(-4 * (x + 2))) if x <= -1 else 1.0 + 10 * (x + 1)

    lr, _ = lr_range_test(step, opt, steps=200, smoothing=0.0, rule="steepest")
    assert 0.005 < lr < 0.02
    flat, _ = lr_range_test(lambda: 2.3, opt, steps=50, rule="steepest")  # nothing falls: the min/10 rule's answer
    assert flat == 1e-6


def test_lr_find_picks_a_rate_and_trains(digits):
    r = _train(digits, {"lr": 1e-5, "lr_find": True, "schedule": "cosine"})
    found = r.settings["lr_found"]
    assert 1e-4 < found < 5 and r.metrics()["lr_found"] == found
    assert r.lr_history is not None and r.lr_history[0] == pytest.approx(found, rel=0.2)  # the schedule starts from it
    bad = _train(digits, {"lr": 1e-5, "schedule": "cosine"})  # the rate it replaced learns nothing in 3 epochs
    assert r.train_loss < 0.7 * bad.train_loss and r.error < 0.5


def test_range_test_leaves_the_model_as_it_was(digits):
    # same seed, same rate: with lr_find the training starts from the same initial weights
    import hwtune.train._adaptive as adaptive

    real = adaptive.lr_range_test

    picked = {}

    def fixed(step, opt, **kw):
        lr, hist = real(step, opt, **kw)
        picked["lr"] = lr
        return 0.05, hist

    adaptive.lr_range_test = fixed
    try:
        with_find = _train(digits, {"lr_find": True, "epochs": 1})
    finally:
        adaptive.lr_range_test = real
    without = _train(digits, {"lr": 0.05, "epochs": 1})
    assert "lr" in picked
    assert (with_find.error, with_find.train_loss) == (without.error, without.train_loss)


def test_hypergradient_raises_a_rate_that_is_too_small(digits):
    base = {"optimizer": "sgd", "momentum": 0.0, "lr": 0.05, "epochs": 3}
    r = _train(digits, {**base, "schedule": "hypergradient", "hypergrad_beta": 0.1})
    h = r.lr_history
    assert h is not None and h[-1] > 1.5 * 0.05  # grew: successive gradients agree while the rate is too small
    assert r.train_loss < _train(digits, base).train_loss  # and so it learned faster than at the fixed rate


def test_hypergradient_rule_on_a_quadratic():
    # f(w) = w^2 / 2 from w = 1: SGD with lr 1.9 overshoots (gradients flip sign), with lr 0.01 crawls
    for lr, grows in ((1.9, False), (0.01, True)):
        w = torch.nn.Parameter(torch.ones(1))
        opt = torch.optim.SGD([w], lr=lr)
        hd = HypergradientLR(opt, beta=0.1)
        for _ in range(10):
            w.grad = w.detach().clone()
            hd.before_step()
            opt.step()
            hd.after_step()
        assert (opt.param_groups[0]["lr"] > lr) == grows


def test_bold_driver_follows_the_held_out_loss():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    losses = iter([1.0, 0.9, 0.8, 0.85, 0.7])
    bd = BoldDriverLR(opt, lambda: next(losses), up=1.1, down=0.5, every=2)
    rates = []
    for _ in range(8):
        bd.after_step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[1] == pytest.approx(0.11) and rates[3] == pytest.approx(0.121) and rates[5] == pytest.approx(0.0605) and rates[7] == pytest.approx(0.06655)


def test_bold_driver_trains(digits):
    r = _train(digits, {"lr": 0.05, "schedule": "bold_driver", "bold_every": 5})
    assert r.train_loss < 0.85 * math.log(10)
    assert len(set(r.lr_history or ())) > 1
