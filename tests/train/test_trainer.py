from __future__ import annotations

from hwtune.train import get_family, load_digits_dataset, train_classifier

ARCH = {"conv_layers": 1, "filters_0": 8, "kernel_0": 3, "dense_units": 32}


def _train(seed=0, epochs=3, reporter=None):
    data = load_digits_dataset()
    model = get_family("cnn").build(ARCH, data.input_shape, 10)
    return train_classifier(model, data, {"lr": 0.1, "momentum": 0.9, "batch_size": 64, "epochs": epochs}, seed=seed, reporter=reporter)


def test_training_learns_digits():
    r = _train(epochs=4)
    assert r.error < 0.2 and r.test_error < 0.2  # chance is 0.9
    assert r.epochs == 4 and r.train_time_s > 0
    m = r.metrics()
    assert m["accuracy"] == 1 - m["error"]


def test_training_is_deterministic_on_cpu():
    assert _train(seed=3).metrics()["error"] == _train(seed=3).metrics()["error"]
    a, b = _train(seed=3), _train(seed=3)
    assert (a.error, a.test_error, a.train_loss) == (b.error, b.test_error, b.train_loss)


def test_reporter_sees_every_epoch():
    seen = []
    _train(epochs=3, reporter=lambda e, v: seen.append((e, v)))
    assert [e for e, _ in seen] == [1, 2, 3]
    assert all(0 <= v <= 1 for _, v in seen)
