"""The ``curve`` pruner's prior studies, as a study run sees them: read before anything is measured
(a wrong name fails first), bound with the run's budget as it starts, and handed to the sampler, so
the pruner and the sampler predict a stopped network's final error with one model of the curves."""

from __future__ import annotations

from typing import Any

import optuna

from hwtune.search import StudyBudget
from hwtune.study._storage import open_storage, storage_errors_as_config_errors

__all__ = ["read_pruner_priors", "bind_pruner"]


def read_pruner_priors(pruner: Any, storage_url: str | None, optuna_study: optuna.Study | None, own_name: str) -> None:
    """Read ``pruner.prior_studies`` (if it has any) from the study's storage; ``own_name`` is refused."""
    if getattr(pruner, "prior_studies", None):
        with storage_errors_as_config_errors(storage_url):
            storage = optuna_study._storage if storage_url is None and optuna_study is not None else open_storage(storage_url)
            pruner.read_priors(storage, own_name)


def bind_pruner(pruner: Any, study: optuna.Study, budget: StudyBudget, storage_url: str | None) -> None:
    """Bind a pruner that takes the run (the ``curve`` pruner: its prior studies read again, the budget
    for its forecast), and give its prior curves to a sampler that reads them (hwtune's)."""
    if not hasattr(pruner, "bind"):
        return
    with storage_errors_as_config_errors(storage_url):
        pruner.bind(study, budget)
    use = getattr(study.sampler, "use_prior_curves", None)
    if callable(use):
        use(list(getattr(pruner, "priors", [])))
