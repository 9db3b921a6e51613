"""``KerasFramework``: Keras 3 as a study's framework (``framework: keras``), the second adapter of
``hwtune.study._framework`` beside PyTorch's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwtune.exceptions import ConfigError
from hwtune.keras._backend import INSTALL_FIX, import_keras, keras_available
from hwtune.keras._backend import backend_name as _backend
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

    export_formats = ("keras", "tflite", "tflite-int8")
    """What ``hwtune export`` writes of a Keras study: ``.keras``, float TFLite, full-integer int8 TFLite."""

    def check_export(self, fmt: str, field: str = "format") -> None:
        """A :class:`ConfigError` naming ``field`` when ``fmt`` cannot be written here (TFLite without TensorFlow)."""
        if fmt not in self.export_formats:
            raise ConfigError(field, f"a Keras study exports as {', '.join(self.export_formats)}, not {fmt!r}.", "e.g. --format keras, or --format tflite / tflite-int8 with TensorFlow installed.")
        if fmt != "keras":
            from hwtune.keras._tflite import check_tflite

            check_tflite(fmt, field)

    def export_file(self, model: Any, fmt: str, path: str | Path, input_shape: tuple[int, ...], *, calibration: Any = None) -> Path:
        """``model`` written as ``fmt`` to ``path``: ``.keras`` (:meth:`save`), or TFLite
        (``hwtune.keras._tflite``; ``calibration``: the training inputs an int8 file is calibrated on)."""
        self.check_export(fmt)
        if fmt == "keras":
            return self.save(model, path)
        from hwtune.keras._tflite import export_tflite

        return export_tflite(model, path, input_shape, int8=fmt == "tflite-int8", calibration=calibration)

    def verify_file(self, model: Any, path: str | Path, fmt: str, inputs: Any, labels: Any = None, *, tolerance: float,
                    validation: tuple[Any, Any] | None = None) -> dict[str, Any]:
        """A TFLite file's outputs against the trained network (``hwtune.keras._tflite.verify_tflite``)."""
        from hwtune.keras._tflite import verify_tflite

        return verify_tflite(model, path, fmt == "tflite-int8", inputs, labels, tolerance=tolerance, validation=validation)

    def measure_file(self, path: str | Path, shape: tuple[int, ...], device: Any, **kwargs: Any) -> Any:
        """Latency of an exported file at batch ``shape[0]``: a ``.keras`` file in Keras (as the study
        measured), a ``.tflite`` file in the TFLite interpreter (``[tflite]`` / ``[tflite-int8]``)."""
        if Path(path).suffix == ".tflite":
            from hwtune.keras._tflite import profile_tflite

            return profile_tflite(path, self.example_input(shape), device, ("latency_ms",), **kwargs)
        return self.measure(self.load(path), {}, shape, device, ("latency_ms",), KERAS_RUNTIME, **kwargs)

    kept_format = "keras"
    """A kept Keras network is the model as a ``.keras`` file (Keras 3's zip of the config JSON and the
    weights), on every backend; read back with ``safe_mode=True``."""
    kept_suffix = ".keras"
    kept_mimetype = "application/zip"

    def save_kept(self, model: Any, path: Path) -> None:
        """``model.save`` as a ``.keras`` file: the architecture and the trained weights (no pickle),
        without the optimizer's state (a third of the size with Adam), which nothing reads back."""
        self.save(_without_optimizer(model), path)

    def load_kept(self, data: bytes, rebuild: Callable[[], Any], trial: int) -> Any:
        """The kept ``.keras`` file loaded with ``safe_mode=True`` on Keras's backend (``rebuild`` is not
        needed: the file holds the network). A ``torch.state_dict`` record (a Keras study of the torch
        backend, kept by an older hwtune) is read by ``TorchFramework`` instead (its format says so)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="hwtune-kept-") as d:
            path = Path(d) / f"trial-{trial}-model.keras"
            path.write_bytes(data)
            try:
                return self.load(path)
            except ConfigError:
                raise
            except Exception as e:  # noqa: BLE001 - Keras raises many types for a file it cannot read
                raise ConfigError("trial", f"the kept model of trial {trial} cannot be loaded as a .keras file on the {_backend()} backend: {type(e).__name__}: {str(e)[:300]}.",
                                  "load it with the KERAS_BACKEND the study ran on, or use another trial's model.") from None

    def param_count(self, model: Any) -> int | None:
        return int(model.count_params())

    def load(self, path: str | Path) -> Any:
        """A ``.keras`` file, loaded with ``safe_mode=True`` (no Python code in it is run: a lambda
        layer is refused)."""
        return import_keras().models.load_model(str(path), safe_mode=True, compile=False)

    def predict(self, model: Any, x: Any) -> Any:
        keras = import_keras()
        return np.asarray(keras.ops.convert_to_numpy(model(np.asarray(x, dtype="float32"), training=False)))


def _without_optimizer(model: Any) -> Any:
    """A copy of a compiled ``model`` (its config, its weights) without the optimizer; ``model`` itself
    when it has none or cannot be rebuilt from its config (a subclassed model is kept with it)."""
    if getattr(model, "optimizer", None) is None:
        return model
    try:
        clone = type(model).from_config(model.get_config())
        clone.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a model without a usable get_config: keep it as it is
        return model
    return clone
