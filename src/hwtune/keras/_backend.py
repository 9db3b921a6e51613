"""Keras 3, imported lazily, and which backend it runs on (``KERAS_BACKEND``: torch, tensorflow, jax)."""

from __future__ import annotations

import importlib.util
from typing import Any

from hwtune.exceptions import ConfigError

__all__ = ["backend_name", "import_keras", "keras_available", "keras_version"]

INSTALL_FIX = "install hwtune's keras extra: pip install -e '.[keras]' in a clone of hwtune (pip install 'keras>=3'); pick the backend with KERAS_BACKEND=torch|tensorflow|jax."


def keras_available() -> bool:
    """Whether Keras is installed (without importing it)."""
    return importlib.util.find_spec("keras") is not None


def _default_backend() -> None:
    """With no ``KERAS_BACKEND``, Keras takes the backend of ``~/.keras/keras.json`` (TensorFlow when
    the file is absent, and it writes that file on first import); where that backend is not installed,
    hwtune picks torch (always installed with hwtune) instead of failing."""
    import json
    import os
    import sys
    from pathlib import Path

    if "keras" in sys.modules or "KERAS_BACKEND" in os.environ:
        return
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        wanted = str(json.loads(config.read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        wanted = "tensorflow"
    if importlib.util.find_spec(wanted) is None:
        os.environ["KERAS_BACKEND"] = "torch"


def import_keras(field: str = "framework") -> Any:
    """The ``keras`` module (3 or later), else a :class:`ConfigError` naming ``field`` and the fix."""
    _default_backend()
    try:
        import keras
    except ImportError as e:
        if not keras_available():
            raise ConfigError(field, "framework keras needs Keras 3, which is not installed.", INSTALL_FIX) from None
        raise ConfigError(field, f"Keras is installed but cannot be imported on its backend: {e}.", "install the backend KERAS_BACKEND names, or set KERAS_BACKEND=torch.") from None
    major = int(str(keras.__version__).split(".")[0])
    if major < 3:
        raise ConfigError(field, f"Keras {keras.__version__} is installed; hwtune needs Keras 3 (multi-backend).", INSTALL_FIX)
    return keras


def backend_name() -> str:
    """``torch``, ``tensorflow`` or ``jax``: the backend Keras runs on in this process."""
    return str(import_keras().backend.backend())


def keras_version() -> str:
    return str(import_keras().__version__)
