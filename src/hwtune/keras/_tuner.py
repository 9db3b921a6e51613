"""``hwtune.keras.Tuner``: a KerasTuner-style entry point to a hardware-aware study.

A KerasTuner user's ``build_fn(hp)`` (or a ``HyperModel`` with ``build(hp)`` and a ``fit(hp, model,
*args, **kwargs)`` override) runs unchanged; what changes is the search: every proposed network is
built untrained and measured on the device first, and one that breaks a hardware constraint
(``"latency_ms <= 5"``) is recorded over budget and never trained, as in every hwtune study. The
trained networks' weights are held in memory (``get_weights``), so ``get_best_models`` works on every
Keras backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.keras._backend import import_keras
from hwtune.keras._families import build_seed
from hwtune.keras._hp import HyperParameters
from hwtune.keras._train import ReportCallback, _accuracy_of

__all__ = ["Tuner"]

_ACCURACY_OBJECTIVES = ("val_accuracy", "accuracy", "val_acc")


def _objective_text(objective: Any) -> Any:
    """KerasTuner's ``"val_accuracy"`` (or an ``Objective`` of it) -> ``minimize: error`` (error is
    1 - validation accuracy); hwtune's own objective texts pass as they are."""
    name = getattr(objective, "name", objective)
    if isinstance(name, str) and name in _ACCURACY_OBJECTIVES:
        return "minimize: error"
    if isinstance(name, str) and name.startswith(("val_", "loss")):
        raise ConfigError("objective", f"hwtune ranks Keras models by validation accuracy (error); {name!r} is not in its vocabulary.", "use objective='val_accuracy' (with metrics=['accuracy'] in compile), or an hwtune objective such as 'minimize: error'.")
    return objective


class Tuner:
    """A KerasTuner-style tuner whose search is hwtune's hardware-aware study.

    Args:
        hypermodel: ``build_fn(hp) -> compiled keras.Model``, or an object with ``build(hp)`` (and
            optionally ``fit(hp, model, *args, **kwargs)``, whose hyperparameters are training params).
        objective: ``"val_accuracy"`` (KerasTuner's name: hwtune minimizes ``error`` = 1 - accuracy),
            or an hwtune objective (``"minimize: error"``, ``{"minimize": ["error", "latency_ms"]}``).
        constraints: hwtune constraint texts, e.g. ``["latency_ms <= 5"]``; hardware ones are checked
            on the untrained network before training.
        max_trials: proposals to make (over-budget ones included, as KerasTuner counts trials).
        device, inference_batch_size, storage, seed, sampler, pruner, cost_model, latency_rel_ci,
        latency_max_time_s: as :class:`hwtune.study.Study` (``storage=None``: in memory).
        project_name: the study's name (resumed when it exists in ``storage``).
        keep_best: how many trained models' weights are held for :meth:`get_best_models`.
    """

    def __init__(
        self,
        hypermodel: Any,
        objective: Any = "val_accuracy",
        constraints: Sequence[str] | str | None = None,
        max_trials: int = 10,
        *,
        device: str = "cpu",
        inference_batch_size: int = 1,
        storage: str | None = None,
        project_name: str = "hwtune_keras",
        seed: int = 0,
        sampler: str = "hwtune",
        pruner: Any = None,
        cost_model: str | None = "auto",
        latency_rel_ci: float = 0.05,
        latency_max_time_s: float = 3.0,
        keep_best: int = 3,
    ) -> None:
        import_keras("hypermodel")
        build = getattr(hypermodel, "build", None)
        if not callable(build) and not callable(hypermodel):
            raise ConfigError("hypermodel", f"expected build_fn(hp) or a HyperModel with build(hp), got {type(hypermodel).__name__}.", "pass the function that builds and compiles the model from hp.")
        self.hypermodel = hypermodel
        self._build: Callable[[HyperParameters], Any] = build if callable(build) else hypermodel
        fit = getattr(hypermodel, "fit", None)
        self._fit: Callable[..., Any] | None = fit if callable(fit) and callable(build) else None
        self.objective = _objective_text(objective)
        self.constraints = [constraints] if isinstance(constraints, str) else list(constraints or [])
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise ConfigError("max_trials", f"must be a positive integer, got {max_trials!r}.")
        self.max_trials = max_trials
        self.keep_best = max(1, int(keep_best))
        self._study_kwargs = {
            "objectives": self.objective, "constraints": self.constraints, "storage": storage, "device": device,
            "inference_batch_size": inference_batch_size, "sampler": sampler, "pruner": pruner, "seed": seed,
            "cost_model": cost_model, "latency_rel_ci": latency_rel_ci, "latency_max_time_s": latency_max_time_s,
        }
        self.project_name = project_name
        self.seed = seed
        self.study: Any = None
        self.fit_calls = 0
        """How many networks were trained (``fit`` called) in this process: over-budget ones never are."""
        self._weights: dict[int, tuple[float, dict[str, Any], list[Any]]] = {}
        self._shape: tuple[int, ...] = ()

    # -- the space ------------------------------------------------------------------------------------
    def _discover(self, x: Any, y: Any, validation_data: Any, fit_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``build`` (and a ``fit`` override, on two samples) with the defaults to record the space."""
        arch = HyperParameters(role="architecture")
        model = self._build(arch)
        space = dict(arch.space)
        if self._fit is not None:
            train = HyperParameters(values=dict(arch.values), role="training")
            train.space = {}
            few = (x[:2], y[:2] if y is not None else None)
            self._fit(train, model, *few, epochs=1, verbose=0, **{k: v for k, v in fit_kwargs.items() if k not in ("epochs", "verbose", "callbacks", "validation_data")})
            for name, p in train.space.items():
                space.setdefault(name, p)  # asked for in build_fn too: architecture
        if not any(getattr(p, "distribution", lambda: None)() is not None for p in space.values()):
            raise ConfigError("hypermodel", "build_fn declares no hyperparameter to search (hp.Int, hp.Float, hp.Choice, hp.Boolean).", "use hp in build_fn, as with KerasTuner.")
        return space

    # -- the search ------------------------------------------------------------------------------------
    def search(self, x: Any, y: Any = None, *, validation_data: Any = None, epochs: int = 1, callbacks: Sequence[Any] = (), **fit_kwargs: Any) -> Any:
        """Search as KerasTuner's ``tuner.search`` does, with the hardware constraints checked before
        any training. Returns the study's summary (``hwtune.study.StudySummary``)."""
        from hwtune.space import SearchSpace
        from hwtune.study import Study

        keras = import_keras()
        if validation_data is None:
            raise ConfigError("validation_data", "hwtune ranks networks by their validation error.", "pass validation_data=(x_val, y_val), as to model.fit.")
        space = SearchSpace(self._discover(x, y, validation_data, fit_kwargs))
        shape = tuple(int(s) for s in np.shape(x)[1:])
        self._shape = shape
        self.study = Study(self.project_name, space, input_shape=shape, runtime="keras", keep_models="none",
                           description={"framework": "keras", "entry": "hwtune.keras.Tuner"}, **self._study_kwargs)
        seed = self.seed

        def build_model(params: dict[str, Any]) -> Any:
            keras.utils.set_random_seed(build_seed(params, seed))
            return self._built(self._build(HyperParameters(values=params)))

        def train_and_evaluate(model: Any, params: dict[str, Any], ctx: Any) -> dict[str, float]:
            keras.utils.set_random_seed(int(ctx.seed))
            last: dict[str, Any] = {}

            def report(epoch: int, error: float) -> None:
                last["error"], last["epochs"] = error, epoch
                ctx.report(epoch, error)

            cbs = [*callbacks, ReportCallback(report)]
            self.fit_calls += 1
            t0 = time.perf_counter()
            if self._fit is not None:
                out = self._fit(HyperParameters(values=params, role="training"), model, x, y, validation_data=validation_data, epochs=epochs, callbacks=cbs, verbose=0, **fit_kwargs)
            else:
                out = model.fit(x, y, validation_data=validation_data, epochs=epochs, callbacks=cbs, verbose=0, **fit_kwargs)
            elapsed = time.perf_counter() - t0
            history = getattr(out, "history", out if isinstance(out, Mapping) else {})
            acc = _accuracy_of({k: (v[-1] if isinstance(v, list) and v else v) for k, v in dict(history).items()})
            if acc is None and "error" in last:
                acc = 1.0 - float(last["error"])
            if acc is None:
                raise ConfigError("metrics", "fit reported no validation accuracy.", "compile the model with metrics=['accuracy'].")
            self._hold(ctx.trial_number, 1.0 - acc, params, model)
            return {"error": 1.0 - acc, "accuracy": acc, "epochs": float(last.get("epochs", epochs)), "train_time_s": elapsed}

        return self.study.optimize(build_model, train_and_evaluate, n_trials=self.max_trials)

    def _built(self, model: Any) -> Any:
        """``model`` with its weights created (a ``Sequential`` without ``keras.Input`` has none until
        its first call): measured, and loaded with trained weights, as the network it is."""
        if not getattr(model, "built", True) or not model.weights:
            model(np.zeros((1, *self._shape), dtype="float32"), training=False)
        return model

    def _hold(self, trial: int, error: float, params: dict[str, Any], model: Any) -> None:
        self._weights[trial] = (error, dict(params), [np.array(w) for w in model.get_weights()])
        if len(self._weights) > self.keep_best:
            worst = max(self._weights, key=lambda t: (self._weights[t][0], t))
            del self._weights[worst]

    # -- results ----------------------------------------------------------------------------------------
    def _best_trials(self, num: int) -> list[int]:
        if self.study is None:
            raise ConfigError("search", "no search has run yet.", "call tuner.search(x, y, validation_data=...) first.")
        best = self.study.best_feasible()
        if len(self.study.objectives) == 1:
            recs = [r for r in self.study.records() if r.feasible and r.values is not None]
            sign = 1.0 if self.study.objectives[0].direction == "minimize" else -1.0
            best = sorted(recs, key=lambda r: (sign * r.values[0], r.number))
        return [r.number for r in best][:num]

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """The hyperparameters of the best feasible trained trials (within every constraint), best first."""
        by_number = {r.number: r for r in self.study.records()} if self.study is not None else {}
        return [HyperParameters(values=by_number[n].params) for n in self._best_trials(num_trials)]

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The best feasible trained models, rebuilt from ``build_fn`` with their trained weights."""
        out = []
        for n in self._best_trials(num_models):
            if n not in self._weights:
                continue  # trained in another process, or beyond keep_best
            _, params, weights = self._weights[n]
            model = self._built(self._build(HyperParameters(values=params)))
            model.set_weights(weights)
            out.append(model)
        return out

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the trial counts by status and the best feasible trials with their params and costs
        (``hwtune show`` prints the full summary of a stored study)."""
        summary = self.study.summary()
        print(f"{summary.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())))
        by_number = {r.number: r for r in summary.records}
        for n in self._best_trials(num_trials):
            r = by_number[n]
            costs = ", ".join(f"{k} {m.value:.4g} ({m.source})" for k, m in r.hardware.items() if getattr(m, "value", None) is not None)
            print(f"trial {n}: error {r.values[0]:.4f}  {r.params}  {costs}")
