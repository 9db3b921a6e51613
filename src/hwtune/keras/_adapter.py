"""``KerasFramework``: Keras 3 as a study's framework (``framework: keras``), the second adapter of
``hwtune.study._framework`` beside PyTorch's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.keras._backend import INSTALL_FIX, import_keras, keras_available
from hwtune.study._framework import Framework, TrainOutcome

__all__ = ["KERAS_RUNTIME", "KerasFramework"]

KERAS_RUNTIME = "keras"
"""A Keras study's runtime (stored with the study): the model runs on Keras's backend
(``KERAS_BACKEND``), which every source label names (``[keras-torch]``)."""


class KerasFramework(Framework):
    """Keras 3 on its torch, tensorflow or jax backend: the ``cnn`` and ``mlp`` families as Keras
    models, trained with ``fit``, measured with the backend's own inference call, saved as ``.keras``.
    Compression params are PyTorch's only (refused, naming the param)."""

    name = "keras"
    runtimes = (KERAS_RUNTIME,)
    default_runtime = KERAS_RUNTIME

    def check_runtime(self, runtime: Any, device: Any = None, field: str = "runtime", *, installed: bool = True) -> str:
        if runtime != KERAS_RUNTIME:
            raise ConfigError(field, f"framework keras measures its models in Keras (runtime: keras), not {runtime!r}.", "leave runtime out (or write runtime: keras) with framework: keras.")
        if installed and not keras_available():
            raise ConfigError(field, "runtime keras needs Keras 3, which is not installed.", INSTALL_FIX)
        if getattr(device, "kind", "cpu") == "remote":
            raise ConfigError("device", "a remote device's agent measures ONNX files; it cannot run a Keras model.", "measure a Keras study on this machine's cpu (or cuda with KERAS_BACKEND=torch).")
        return KERAS_RUNTIME

    def check_space(self, space: Any, runtime: str) -> None:
        from hwtune.compress import COMPRESSION_PARAMS
        from hwtune.keras._train import unsupported_in_space

        for name in space:
            if name in COMPRESSION_PARAMS:
                raise ConfigError(f"space.{name}", f"{name} is a compression param, and compression is PyTorch's only (torch-pruning, ONNX Runtime int8).", f"remove {name} from the space, or use framework: torch.")
        unsupported_in_space(space)

    def build(self, family: str, params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
        from hwtune.keras._families import build_family

        return build_family(family, params, input_shape, num_classes)

    def example_input(self, shape: tuple[int, ...]) -> Any:
        return np.zeros(shape, dtype="float32")

    def measure(self, model: Any, params: Mapping[str, Any], shape: tuple[int, ...], device: Any, metrics: Iterable[str], runtime: str, **kwargs: Any) -> Any:
        from hwtune.keras._runner import profile_keras

        return profile_keras(model, self.example_input(shape), device, tuple(metrics), **kwargs)

    def train(self, model: Any, data: Any, params: Mapping[str, Any], *, seed: int, device: Any, reporter: Callable[[int, float], None] | None, options: Any = None) -> TrainOutcome:
        from hwtune.keras._train import train_keras

        with device.activate():
            return train_keras(model, data, params, seed=seed, reporter=reporter)

    def save(self, model: Any, path: str | Path) -> Path:
        p = Path(path)
        if p.suffix != ".keras":
            raise ConfigError("out", f"a Keras model is saved as a .keras file, not {p.name!r}.", "give a path ending in .keras.")
        model.save(str(p))
        return p

    def param_count(self, model: Any) -> int | None:
        return int(model.count_params())

    def load(self, path: str | Path) -> Any:
        """A ``.keras`` file, loaded with ``safe_mode=True`` (no Python code in it is run: a lambda
        layer is refused)."""
        return import_keras().models.load_model(str(path), safe_mode=True, compile=False)

    def predict(self, model: Any, x: Any) -> Any:
        keras = import_keras()
        return np.asarray(keras.ops.convert_to_numpy(model(np.asarray(x, dtype="float32"), training=False)))
