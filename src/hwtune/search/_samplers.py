"""Samplers a study can use, by name, and the bridge that tells them about infeasible trials.

``search`` knows nothing of PyTorch: it sees params, stored measurements and constraint violations.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any, Callable

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

from hwtune.exceptions import ConfigError

__all__ = ["SAMPLERS", "make_sampler"]


def _trial_seed(seed: int, number: int) -> int:
    """A seed for trial ``number`` of a study seeded ``seed`` (32 bits, as NumPy's RandomState takes)."""
    return zlib.crc32(f"hwtune:{seed}:{number}".encode()) & 0xFFFFFFFF


class _StateSeeded:
    """Mixin for Optuna's seeded samplers: at its first trial, when the study already holds trials, the
    sampler's generators are reseeded from (seed, that trial's number).

    Seeded from the seed alone, a resumed study (or a second process on the same study) replays the
    proposals already tried. Trial numbers are unique across processes, so a resume or another
    process continues with a fresh stream, while a fresh study draws exactly what ``seed`` alone gives.
    """

    _study_seed: int | None = None
    _state_seeded = False

    def _generators(self) -> list[Any]:
        """The ``RandomState`` s to reseed (the sampler's own first)."""
        return [self._rng.rng]  # type: ignore[attr-defined]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self._state_seeded:
            self._state_seeded = True
            if self._study_seed is not None and trial.number > 0:
                for k, rng in enumerate(self._generators()):
                    rng.seed(_trial_seed(self._study_seed + k, trial.number))
        super().before_trial(study, trial)  # type: ignore[misc]


class _StateSeededRandomSampler(_StateSeeded, optuna.samplers.RandomSampler):
    """Optuna's random sampler, seeded from the study's state (:class:`_StateSeeded`)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._study_seed = seed


class _StateSeededTPESampler(_StateSeeded, optuna.samplers.TPESampler):
    """Optuna's TPE, seeded from the study's state (:class:`_StateSeeded`), its start-up sampler too."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._study_seed = seed

    def _generators(self) -> list[Any]:
        return [self._rng.rng, self._random_sampler._rng.rng]


def _random(seed: int | None, **_: Any) -> BaseSampler:
    # Constraint-aware through the loop: every proposal is measured before training, an
    # over-budget one is never trained, and an architecture known to be over budget is never
    # measured again (the loop reuses the stored measurement).
    return _StateSeededRandomSampler(seed=seed)


def _tpe(seed: int | None, n_startup_trials: int = 10, **_: Any) -> BaseSampler:
    # Multivariate, grouped TPE handles the conditional (per-layer) params jointly. It is told about
    # infeasible trials through the constraint values the loop sets on every trial (Optuna 5's
    # ``Trial.set_constraint``): over-budget trials are PRUNED with positive violations, so TPE puts
    # them on the "bad" side.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _StateSeededTPESampler(seed=seed, n_startup_trials=n_startup_trials, multivariate=True, group=True)


def _hwtune(
    seed: int | None,
    space: Any = None,
    objectives: Any = None,
    constraints: Any = None,
    **options: Any,
) -> BaseSampler:
    # Hardware-aware constrained BO (hwtune.search._hwsampler). Without space/objectives/constraints
    # it reads them from the study's stored definition (``hwtune:config``) at the first proposal; a
    # study hands it its cost model (``HwSampler.use_cost_models``).
    from hwtune.search._hwsampler import HwSampler

    return HwSampler(space, objectives, constraints, seed=seed, **options)


SAMPLERS: dict[str, Callable[..., BaseSampler]] = {"hwtune": _hwtune, "random": _random, "tpe": _tpe}
"""Sampler name -> factory ``(seed, **options) -> optuna BaseSampler``."""


def make_sampler(name: str | BaseSampler, seed: int | None = None, field: str = "sampler", **options: Any) -> BaseSampler:
    """A sampler by name (``hwtune``, ``random``, ``tpe``), or an Optuna sampler instance passed through.

    ``options`` go to the factory; every factory accepts (and the baselines ignore) ``space=``,
    ``objectives=`` and ``constraints=``, so a study can always pass its definition.
    """
    if isinstance(name, BaseSampler):
        return name
    try:
        factory = SAMPLERS[name]
    except (KeyError, TypeError):
        raise ConfigError(field, f"unknown sampler {name!r}.", f"use one of {', '.join(sorted(SAMPLERS))}.") from None
    return factory(seed, **options)
