"""Training a Keras model with Keras's own ``fit``, from the study file's training vocabulary.

The optimizers and schedules of ``hwtune.train.TRAINING_SPECS`` map to Keras's own
(:func:`keras_optimizer`); what Keras has no equivalent for is a :class:`ConfigError` naming the param
(:func:`unsupported`), checked on the search space before a study starts and on each trial's values.
After every epoch :class:`ReportCallback` hands the validation error to the study (its pruner may
stop the trial there). Seeded with ``keras.utils.set_random_seed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError, NonFiniteLossError
from hwtune.keras._backend import backend_name, import_keras

__all__ = ["ReportCallback", "keras_optimizer", "train_keras", "unsupported", "unsupported_in_space"]

_SCHEDULES_KERAS_LACKS = {
    "onecycle": "Keras has no one-cycle schedule",
    "hypergradient": "hypergradient descent is hwtune's PyTorch trainer's",
    "bold_driver": "the bold driver is hwtune's PyTorch trainer's",
}
_AUGMENT_FIX = "remove augment (or set it to none), or augment inside your own Keras model (keras.layers.RandomCrop / RandomFlip) through hwtune.keras.Tuner."


def unsupported(name: str, value: Any, params: Mapping[str, Any] | None = None) -> str | None:
    """Why training param ``name`` = ``value`` has no Keras equivalent (``None``: it has one)."""
    params = params or {}
    if name == "schedule" and value in _SCHEDULES_KERAS_LACKS:
        return f"schedule {value!r}: {_SCHEDULES_KERAS_LACKS[value]}"
    if name == "augment" and value not in (None, "none"):
        return f"augment {value!r}: the Keras trainer does not augment"
    if name == "lr_find" and bool(value):
        return "lr_find: the learning-rate range test is hwtune's PyTorch trainer's"
    if name == "lr_decay" and float(value) > 0:
        return "lr_decay: Keras's Adagrad has no learning-rate decay (use a schedule)"
    if name == "warmup_epochs" and float(value) > 0 and params.get("schedule", "constant") != "cosine":
        return "warmup_epochs: Keras warms up only its cosine schedule (CosineDecay's warmup)"
    if name == "weight_decay" and float(value) > 0 and params.get("optimizer", "sgd") == "adam":
        return "weight_decay with optimizer adam: Keras decays weights decoupled (AdamW), never as Adam's L2 term"
    return None


def unsupported_in_space(space: Any, field: str = "space") -> None:
    """Refuse, before a study starts, a space whose training params may take a value Keras lacks."""
    from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam

    def values(p: Any) -> list[Any]:
        if isinstance(p, CategoricalParam):
            return list(p.choices)
        if isinstance(p, FixedParam):
            return [p.value]
        if isinstance(p, (IntParam, FloatParam)):
            return [p.high]
        return []

    fixed = {n: p.value for n, p in space.items() if isinstance(p, FixedParam)}
    for name, p in space.items():
        if name == "warmup_epochs" and "schedule" in space and not isinstance(space["schedule"], FixedParam):
            ctx: dict[str, Any] = {"schedule": "constant"}  # a searched schedule: warm-up would apply to others than cosine
        else:
            ctx = fixed
        for v in values(p):
            if isinstance(v, bool) and name not in ("lr_find",):
                continue
            try:
                why = unsupported(name, v, ctx)
            except (TypeError, ValueError):
                why = None
            if why:
                raise ConfigError(f"{field}.{name}", f"framework keras cannot train it: {why}.", f"remove {name} or its value {v!r} from the space, or use framework: torch.")


def _schedule(plan: Any, steps_per_epoch: int) -> tuple[Any, list[Any]]:
    """(learning rate or Keras ``LearningRateSchedule``, callbacks) of the trial's schedule."""
    keras = import_keras()
    s = keras.optimizers.schedules
    kw = plan.schedule_kwargs
    lr = plan.lr
    total = max(1, plan.epochs * steps_per_epoch)
    if plan.schedule == "constant":
        return lr, []
    if plan.schedule == "step":
        return s.ExponentialDecay(lr, decay_steps=max(1, round(float(kw["step_epochs"]) * steps_per_epoch)), decay_rate=float(kw["step_gamma"]), staircase=True), []
    if plan.schedule == "exponential":
        return s.ExponentialDecay(lr, decay_steps=steps_per_epoch, decay_rate=float(kw["exp_gamma"])), []
    if plan.schedule == "cosine":
        warm = round(plan.warmup_epochs * steps_per_epoch)
        if warm > 0:  # Keras's own warm-up: linear from initial_learning_rate to warmup_target
            return s.CosineDecay(lr / 100.0, decay_steps=max(1, total - warm), alpha=float(kw["min_lr_factor"]), warmup_target=lr, warmup_steps=warm), []
        return s.CosineDecay(lr, decay_steps=total, alpha=float(kw["min_lr_factor"])), []
    if plan.schedule == "cosine_restarts":
        return s.CosineDecayRestarts(lr, first_decay_steps=max(1, round(float(kw["restart_epochs"]) * steps_per_epoch)), t_mul=float(kw["restart_mult"]), alpha=float(kw["min_lr_factor"])), []
    if plan.schedule == "plateau":
        cb = keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=float(kw["plateau_factor"]), patience=int(kw["plateau_patience"]), min_delta=0.0, verbose=0)
        return lr, [cb]
    raise ConfigError("schedule", f"framework keras cannot train with schedule {plan.schedule!r}: {_SCHEDULES_KERAS_LACKS.get(plan.schedule, 'no Keras equivalent')}.", "use constant, step, exponential, cosine, cosine_restarts or plateau, or framework: torch.")


def keras_optimizer(plan: Any, steps_per_epoch: int) -> tuple[Any, list[Any]]:
    """The Keras optimizer (and callbacks) of a ``hwtune.train.TrainingPlan``.

    sgd -> ``SGD`` (momentum, nesterov), adagrad -> ``Adagrad`` (accumulators start at 0, as PyTorch's),
    rmsprop -> ``RMSprop`` (``alpha`` is ``rho``), adam -> ``Adam``, adamw -> ``AdamW``;
    ``clip_norm`` -> ``global_clipnorm``; ``weight_decay`` is Keras's decoupled decay (equal to
    PyTorch's L2 term for plain SGD; refused for Adam, whose decoupled form is AdamW).
    """
    keras = import_keras()
    o = keras.optimizers
    lr, callbacks = _schedule(plan, steps_per_epoch)
    kw = dict(plan.optimizer_kwargs)
    common: dict[str, Any] = {"learning_rate": lr}
    if plan.clip_norm > 0:
        common["global_clipnorm"] = plan.clip_norm
    wd = plan.weight_decay
    if wd > 0:
        if plan.optimizer == "adam":
            raise ConfigError("weight_decay", "framework keras cannot train it: Keras decays weights decoupled (AdamW), never as Adam's L2 term.", "use optimizer: adamw, or weight_decay: 0 with adam.")
        common["weight_decay"] = wd
    if plan.optimizer == "sgd":
        return o.SGD(momentum=kw["momentum"], nesterov=kw["nesterov"], **common), callbacks
    if plan.optimizer == "adagrad":
        if kw.get("lr_decay", 0.0) > 0:
            raise ConfigError("lr_decay", "framework keras cannot train it: Keras's Adagrad has no learning-rate decay.", "remove lr_decay (use a schedule), or use framework: torch.")
        return o.Adagrad(initial_accumulator_value=0.0, epsilon=kw["eps"], **common), callbacks
    if plan.optimizer == "rmsprop":
        return o.RMSprop(rho=kw["alpha"], momentum=kw["momentum"], epsilon=kw["eps"], centered=kw["centered"], **common), callbacks
    b1, b2 = kw["betas"]
    cls = o.AdamW if plan.optimizer == "adamw" else o.Adam
    return cls(beta_1=b1, beta_2=b2, epsilon=kw["eps"], amsgrad=kw["amsgrad"], **common), callbacks


def _accuracy_of(logs: Mapping[str, Any]) -> float | None:
    for k in ("val_accuracy", "val_acc", "val_sparse_categorical_accuracy", "val_categorical_accuracy"):
        if k in logs and logs[k] is not None:
            return float(logs[k])
    return None


def ReportCallback(reporter: Callable[[int, float], None]) -> Any:
    """A ``keras.callbacks.Callback`` calling ``reporter(epoch, validation error)`` after every epoch
    (epochs counted from 1, as the PyTorch trainer does). An exception it raises (``optuna.TrialPruned``)
    ends ``fit``; a NaN/inf loss raises :class:`NonFiniteLossError`."""
    keras = import_keras()

    class _Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = logs or {}
            loss = logs.get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                raise NonFiniteLossError(f"loss became {float(loss)} in epoch {epoch + 1}; a lower learning rate usually fixes this")
            acc = _accuracy_of(logs)
            if acc is None:
                raise ConfigError("metrics", "the model's fit reports no validation accuracy to stop trials on.", "compile the model with metrics=['accuracy'] and pass validation data.")
            reporter(epoch + 1, 1.0 - acc)

    return _Report()


def train_keras(model: Any, data: Any, params: Mapping[str, Any], *, seed: int = 0, reporter: Callable[[int, float], None] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Compile and ``fit`` a model of a built-in family on ``data`` (``hwtune.train.Dataset``).

    Returns ``(metrics, settings)``: ``error`` (validation), ``accuracy``, ``test_error``,
    ``train_loss``, ``epochs``, ``train_time_s``; and the resolved training settings.
    """
    from hwtune.train import resolve_training

    keras = import_keras()
    for name, v in params.items():
        why = unsupported(name, v, params)
        if why:
            raise ConfigError(name, f"framework keras cannot train it: {why}.", f"remove {name}, or use framework: torch.")
    plan = resolve_training(params, strict=False)
    keras.utils.set_random_seed(int(seed))
    n = len(data.y_train)
    steps = max(1, -(-n // plan.batch_size))
    optimizer, callbacks = keras_optimizer(plan, steps)
    k = int(data.num_classes)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=plan.label_smoothing),
        metrics=["accuracy"],
    )
    onehot = np.eye(k, dtype="float32")
    x_tr, y_tr = np.asarray(data.x_train, dtype="float32"), onehot[np.asarray(data.y_train)]
    x_va, y_va = np.asarray(data.x_val, dtype="float32"), onehot[np.asarray(data.y_val)]
    if reporter is not None:
        callbacks.append(ReportCallback(reporter))
    t0 = time.perf_counter()
    hist = model.fit(x_tr, y_tr, batch_size=plan.batch_size, epochs=plan.epochs, validation_data=(x_va, y_va), callbacks=callbacks, shuffle=True, verbose=0)
    elapsed = time.perf_counter() - t0
    losses = hist.history.get("loss") or [float("nan")]
    if not np.isfinite(losses[-1]):
        raise NonFiniteLossError(f"loss became {losses[-1]}; a lower learning rate usually fixes this")
    val_acc = _accuracy_of({k2: v[-1] for k2, v in hist.history.items() if v}) or 0.0
    test_error = _error(model, data.x_test, data.y_test, plan.batch_size)
    settings: dict[str, Any] = {"plan": plan.describe(), "framework": "keras", "keras_backend": backend_name(), "keras": str(keras.__version__),
                                "optimizer_class": type(optimizer).__name__, "train_images_per_s": n * len(losses) / elapsed if elapsed > 0 else 0.0}
    if plan.ignored:
        settings["ignored_params"] = list(plan.ignored)
    metrics = {"error": 1.0 - val_acc, "accuracy": val_acc, "train_loss": float(losses[-1]), "epochs": float(len(losses)), "train_time_s": elapsed}
    if test_error is not None:  # no test split: no test error (never a made-up one)
        metrics["test_error"] = test_error
    return metrics, settings


def _error(model: Any, x: Any, y: Any, batch: int) -> float | None:
    if len(y) == 0:
        return None
    logits = model.predict(np.asarray(x, dtype="float32"), batch_size=max(batch, 256), verbose=0)
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) != np.asarray(y)))

