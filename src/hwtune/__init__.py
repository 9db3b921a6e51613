"""hwtune: find the most accurate neural network that fits a hardware budget on its device."""

from __future__ import annotations

__version__ = "0.1.0"
