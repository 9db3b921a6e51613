"""Keras tests run on the torch backend unless KERAS_BACKEND says otherwise (no TensorFlow download).
Each test module starts with ``pytest.importorskip("keras", ...)``: without Keras they are skipped
with the reason."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
