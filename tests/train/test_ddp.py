"""DistributedDataParallel: 2 CPU processes with gloo match one process; a pruned report stops every rank."""

from __future__ import annotations

import time

import optuna
import pytest
import torch

from hwtune.train import get_family, load_digits_dataset, train_classifier

ARCH = {"conv_layers": 1, "filters_0": 8, "kernel_0": 3, "dense_units": 32}
PARAMS = {"epochs": 2, "batch_size": 64, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "label_smoothing": 0.05, "clip_norm": 5.0}

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="torch.distributed with gloo is unavailable")


def _run(processes: int, reporter=None, params=PARAMS):
    data = load_digits_dataset()
    model = get_family("cnn").build(ARCH, data.input_shape, 10)
    res = train_classifier(model, data, params, seed=5, reporter=reporter,
                           options={"ddp_processes": processes, "channels_last": False, "amp": False, "ddp_timeout_s": 120})  # no auto probes: each process could decide apart under load
    return res, torch.nn.utils.parameters_to_vector(model.parameters()).detach()


def test_two_gloo_processes_match_one_process():
    seen: dict[int, list] = {1: [], 2: []}
    one, w1 = _run(1, lambda e, v: seen[1].append((e, v)))
    two, w2 = _run(2, lambda e, v: seen[2].append((e, v)))
    assert two.settings["ddp_processes"] == 2
    # the same updates up to floating-point summation order
    assert (w1 - w2).abs().max() < 1e-4
    assert two.train_loss == pytest.approx(one.train_loss, rel=1e-4)
    assert abs(two.error - one.error) <= 0.01 and abs(two.test_error - one.test_error) <= 0.01
    assert [e for e, _ in seen[2]] == [1, 2]  # reports come from rank 0, in this process
    assert all(abs(a[1] - b[1]) <= 0.01 for a, b in zip(seen[1], seen[2]))


def test_a_pruned_report_stops_every_process():
    def prune(epoch: int, value: float) -> None:
        raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    t = time.perf_counter()
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        _run(2, prune, {**PARAMS, "epochs": 50})
    assert time.perf_counter() - t < 60  # did not train the 50 epochs (nor wait for a stuck worker)
