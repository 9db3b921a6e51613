"""Devices and meters: every number carries its unit, source and confidence interval.

``hardware`` knows nothing of Optuna or of what to try next.
"""

from hwtune.hardware._device import CPUDevice, available_cpu_count, parse_device
from hwtune.hardware._latency import LatencyResult, median_confidence_interval, time_until_confident
from hwtune.hardware._measurement import HardwareReport, Measurement
from hwtune.hardware._profile import PROFILE_METRICS, count_parameters, profile, serialized_size_mb

__all__ = [
    "CPUDevice",
    "parse_device",
    "available_cpu_count",
    "HardwareReport",
    "Measurement",
    "LatencyResult",
    "median_confidence_interval",
    "time_until_confident",
    "profile",
    "PROFILE_METRICS",
    "count_parameters",
    "serialized_size_mb",
]
