"""Keras 3 as hwtune's second framework (issue 15).

- ``framework: keras`` in a study file: the ``cnn`` and ``mlp`` families built as Keras models from
  the same params as PyTorch's, trained with ``fit`` (the study's optimizers and schedules mapped to
  Keras's own), measured with the backend's own inference call (:class:`KerasRunner`), saved as
  ``.keras``. The adapter is :class:`KerasFramework` (``hwtune.study._framework``).
- :class:`Tuner`: a KerasTuner-style entry point (``build_fn(hp)``, ``tuner.search``,
  ``tuner.get_best_models``) whose search checks hardware constraints before training.

Keras is an optional dependency (``pip install -e '.[keras]'``), imported when first used; the
backend is Keras's own choice (``KERAS_BACKEND=torch|tensorflow|jax``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["HyperParameters", "KerasFramework", "KerasRunner", "Tuner", "build_family", "profile_keras", "train_keras"]

_WHERE = {
    "HyperParameters": "hwtune.keras._hp",
    "KerasFramework": "hwtune.keras._adapter",
    "KerasRunner": "hwtune.keras._runner",
    "profile_keras": "hwtune.keras._runner",
    "Tuner": "hwtune.keras._tuner",
    "build_family": "hwtune.keras._families",
    "train_keras": "hwtune.keras._train",
}


def __getattr__(name: str) -> Any:  # names load on first use: `import hwtune.keras` imports no Keras
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hwtune.keras' has no attribute {name!r}")
