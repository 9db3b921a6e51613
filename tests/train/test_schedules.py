"""Learning-rate schedules: the rate they produce step by step, and that each trains."""

from __future__ import annotations

import math

import pytest
import torch

from hwtune.train import SCHEDULES, LRController, get_family, resolve_training, train_classifier

ARCH = {"conv_layers": 1, "filters_0": 8, "kernel_0": 3, "dense_units": 32}


def _rates(params: dict, steps_per_epoch: int = 10, val_errors: list[float] | None = None) -> list[float]:
    """The rate after every step of a run of ``params['epochs']`` epochs (no training: a dummy parameter)."""
    plan = resolve_training({"lr": 0.1, "epochs": 4, **params})
    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=plan.lr, momentum=0.9)
    ctrl = LRController(plan, opt, steps_per_epoch, record=True)
    rates = [opt.param_groups[0]["lr"]]
    for epoch in range(plan.epochs):
        for _ in range(steps_per_epoch):
            w.grad = torch.ones(2)
            ctrl.before_step()
            opt.step()
            ctrl.after_step()
        ctrl.after_epoch(val_errors[epoch] if val_errors else 0.5)
    assert ctrl.history is not None and len(ctrl.history) == plan.epochs * steps_per_epoch
    return rates + list(ctrl.history)


def test_constant():
    assert set(_rates({})) == {0.1}


def test_step_decay_every_step_epochs():
    r = _rates({"schedule": "step", "step_epochs": 1, "step_gamma": 0.5})
    assert r[0] == 0.1 and r[9] == 0.1 and r[10] == pytest.approx(0.05) and r[20] == pytest.approx(0.025) and r[-1] == pytest.approx(0.00625)
    # r[k] is the rate after step k, i.e. the rate of step k + 1


def test_exponential_decays_by_gamma_per_epoch():
    r = _rates({"schedule": "exponential", "exp_gamma": 0.5})
    assert r[10] == pytest.approx(0.05) and r[20] == pytest.approx(0.025)
    assert all(a > b for a, b in zip(r, r[1:]))  # smooth: every step


def test_cosine_anneals_to_the_floor_at_the_last_step():
    r = _rates({"schedule": "cosine", "min_lr_factor": 0.1})
    assert r[0] == 0.1 and r[20] == pytest.approx(0.055) and r[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(r, r[1:]))


def test_cosine_with_warm_restarts():
    r = _rates({"schedule": "cosine_restarts", "restart_epochs": 1, "restart_mult": 1})
    assert r[10] == pytest.approx(0.1) and r[20] == pytest.approx(0.1)  # back to the top at every epoch
    assert r[5] == pytest.approx(0.05)
    r = _rates({"schedule": "cosine_restarts", "restart_epochs": 1, "restart_mult": 2})
    assert r[10] == pytest.approx(0.1) and r[30] == pytest.approx(0.1) and r[20] < 0.1  # cycles of 1, 2 epochs


def test_reduce_on_plateau_uses_the_validation_error():
    r = _rates({"schedule": "plateau", "plateau_factor": 0.5, "plateau_patience": 0}, val_errors=[0.5, 0.4, 0.4, 0.4])
    # improved after epoch 2; stalled after epoch 3: halved for epoch 4
    assert r[11] == 0.1 and r[21] == 0.1 and r[31] == pytest.approx(0.05)
    improving = _rates({"schedule": "plateau", "plateau_factor": 0.5}, val_errors=[0.5, 0.4, 0.3, 0.2])
    assert set(improving) == {0.1}


def test_onecycle_peaks_at_lr():
    r = _rates({"schedule": "onecycle", "onecycle_pct": 0.25, "onecycle_div": 10})
    peak = max(range(len(r)), key=r.__getitem__)
    assert r[0] == pytest.approx(0.01) and r[peak] == pytest.approx(0.1) and 8 <= peak <= 12
    assert r[-1] < 0.001


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_linear_warmup_in_front_of_any_schedule(schedule):
    r = _rates({"schedule": schedule, "warmup_epochs": 1})
    assert r[0] == pytest.approx(0.001)  # lr / 100
    ramp = r[:11] if schedule != "onecycle" else r[:10]
    assert all(b > a for a, b in zip(ramp, ramp[1:]))
    assert r[10] == pytest.approx(0.1 if schedule != "onecycle" else 0.1 / 25)  # onecycle starts its own cycle at lr / 25
    diffs = [b - a for a, b in zip(ramp, ramp[1:])]
    assert max(diffs) - min(diffs) < 1e-9  # linear
    if schedule == "cosine":  # the cosine then runs over the 3 epochs that are left
        assert r[-1] == pytest.approx(0.0, abs=1e-9) and r[25] == pytest.approx(0.05)


def test_schedule_durations_are_in_epochs_whatever_the_batch_size():
    a = _rates({"schedule": "step", "step_epochs": 2, "step_gamma": 0.1}, steps_per_epoch=5)
    b = _rates({"schedule": "step", "step_epochs": 2, "step_gamma": 0.1}, steps_per_epoch=20)
    assert a[::5] == pytest.approx(b[::20])


@pytest.mark.parametrize("schedule", [s for s in SCHEDULES if s not in ("hypergradient", "bold_driver")])
def test_each_schedule_trains_a_small_model_on_digits(digits, schedule):
    model = get_family("cnn").build(ARCH, digits.input_shape, 10)
    seen: list[tuple[int, float]] = []
    r = train_classifier(model, digits, {"lr": 0.1, "epochs": 3, "schedule": schedule, "warmup_epochs": 0.5},
                         reporter=lambda e, v: seen.append((e, v)), record_lr=True)
    assert r.train_loss < 0.85 * math.log(10), r
    assert [e for e, _ in seen] == [1, 2, 3]  # one validation report per epoch
    assert r.lr_history is not None and len(r.lr_history) == 3 * math.ceil(len(digits.y_train) / 64)
