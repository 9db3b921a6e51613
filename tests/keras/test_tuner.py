"""``hwtune.keras.Tuner``: a KerasTuner ``build_fn`` runs unchanged, with hardware constraints checked
before any training."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[keras]')")

from hwtune.exceptions import ConfigError
from hwtune.keras import HyperParameters, Tuner
from hwtune.keras._backend import import_keras
from hwtune.train import load_dataset

keras = import_keras()


def build_model(hp):
    """KerasTuner's getting-started model, as its users write it (hp inside build_fn, compiled there)."""
    model = keras.Sequential()
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(units=hp.Int("units", min_value=32, max_value=512, step=32), activation="relu"))
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    d = load_dataset("digits", seed=0)
    onehot = np.eye(10, dtype="float32")
    return d.x_train, onehot[d.y_train], d.x_val, onehot[d.y_val]


def test_keras_tuner_s_getting_started_model_runs_with_a_latency_constraint(data) -> None:
    x, y, xv, yv = data
    tuner = Tuner(build_model, objective="val_accuracy", constraints=["latency_ms <= 100"], max_trials=3, seed=1, latency_max_time_s=0.1)
    tuner.search(x, y, epochs=2, validation_data=(xv, yv))
    space = tuner.study.space
    assert {n: space[n].role for n in space} == {"units": "architecture", "dropout": "architecture", "lr": "architecture"}
    rec = tuner.study.records()[0]
    assert rec.hardware["latency_ms"].source.startswith("measured:timer") and "keras" in rec.hardware["latency_ms"].source
    (best,) = tuner.get_best_models(num_models=1)
    (hp,) = tuner.get_best_hyperparameters(1)
    assert best.layers[1].units == hp["units"]
    acc = float(np.mean(np.argmax(np.asarray(best.predict(xv, verbose=0)), 1) == np.argmax(yv, 1)))
    best_rec = next(r for r in tuner.study.records() if r.params == hp.values)
    assert acc == pytest.approx(best_rec.metrics["accuracy"], abs=1e-6)  # the trained weights, not a rebuilt network
    assert acc > 0.5


def test_over_budget_networks_are_never_trained(data) -> None:
    x, y, xv, yv = data

    class CountFits(keras.callbacks.Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            CountFits.fits += 1

    # Dense(units) on 64 inputs + Dense(10): 75 * units + 10 params; at most 20,000 -> units <= 266
    tuner = Tuner(build_model, constraints=["params <= 20000"], max_trials=6, sampler="random", cost_model=None, seed=3, latency_max_time_s=0.2)
    summary = tuner.search(x, y, epochs=1, validation_data=(xv, yv), callbacks=[CountFits()])
    over = [r for r in summary.records if r.status == "over_budget"]
    trained = [r for r in summary.records if r.status == "trained"]
    assert over and trained, summary.counts
    assert CountFits.fits == tuner.fit_calls == len(trained)
    assert all(r.params["units"] > 266 and not r.metrics for r in over)
    assert all(r.params["units"] <= 266 for r in trained)
    assert all(m.layers[1].units <= 266 for m in tuner.get_best_models(3))


class TunedFit:
    """A KerasTuner HyperModel with a fit override: its hp are training params."""

    def build(self, hp):
        model = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Flatten(), keras.layers.Dense(hp.Int("units", 8, 64), activation="relu"), keras.layers.Dense(10)])
        model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 64]), shuffle=hp.Boolean("shuffle"), **kwargs)


def test_params_of_a_fit_override_are_training_params(data) -> None:
    x, y, xv, yv = data
    tuner = Tuner(TunedFit(), max_trials=2, seed=0, latency_max_time_s=0.2)
    summary = tuner.search(x, y, epochs=1, validation_data=(xv, yv))
    roles = {n: tuner.study.space[n].role for n in tuner.study.space}
    assert roles == {"units": "architecture", "batch_size": "training", "shuffle": "training"}
    assert summary.counts.get("trained") == 2


def test_hp_records_keras_tuner_s_arguments() -> None:
    hp = HyperParameters()
    assert hp.Int("a", 2, 10, step=2) == 2 and hp.Float("b", 0.1, 1.0, sampling="log") == 0.1
    assert hp.Choice("c", ["x", "y"], default="y") == "y" and hp.Boolean("d") is False and hp.Fixed("e", 3) == 3
    assert hp.space["a"].step == 2 and hp.space["b"].log and hp.space["c"].choices == ("x", "y")
    assert HyperParameters(values={"a": 8}).Int("a", 2, 10) == 8
    with pytest.raises(ConfigError):
        hp.Float("f", 0.1, 1.0, sampling="reverse_log")


def test_bad_objective_and_missing_validation_data_are_refused(data) -> None:
    with pytest.raises(ConfigError) as e:
        Tuner(build_model, objective="val_loss")
    assert e.value.field == "objective"
    with pytest.raises(ConfigError) as e2:
        Tuner(build_model, max_trials=1).search(data[0], data[1])
    assert e2.value.field == "validation_data"
