"""Devices and meters: every number carries its unit, source and confidence interval.

``profile(model, example_input, device)`` measures latency and throughput (adaptive repeats until the
median's confidence interval is tight; CUDA events on GPU), power and energy (RAPL on CPU, NVML on
NVIDIA GPUs, labelled estimates where no sensor exists), peak memory, parameters, FLOPs and
serialized size, and watches the device's state while it does.

``hardware`` knows nothing of Optuna or of what to try next.
"""

from hwtune.hardware._convert import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    ExportError,
    check_runtime,
    export_onnx,
    export_torchscript,
    label_runtime,
    onnx_batch_dim,
    profile_in_runtime,
    runtime_of_file,
    runtime_source,
)
from hwtune.hardware._cpu import CPUStateMeter, CPUUtilisationEstimateMeter
from hwtune.hardware._decide import (
    decide_near_bounds,
    pool_measurements,
    remeasure_until_decided,
    straddles,
)
from hwtune.hardware._device import (
    CPUDevice,
    CUDADevice,
    Device,
    available_cpu_count,
    parse_device,
)
from hwtune.hardware._latency import (
    CudaEventTimer,
    LatencyResult,
    median_confidence_interval,
    time_until_confident,
    warm_up,
)
from hwtune.hardware._measurement import (
    BATCH_METRICS,
    HardwareReport,
    Measurement,
    format_report,
)
from hwtune.hardware._memory import CPUMemoryMeter, CUDAMemoryMeter
from hwtune.hardware._meters import DeviceState, EnergyMeter, Meter, MeterGroup, Window
from hwtune.hardware._nvml import (
    NVMLEnergyMeter,
    NVMLPowerMeter,
    NVMLStateMeter,
    NVMLUnavailable,
    integrate_power,
)
from hwtune.hardware._profile import (
    PROFILE_METRICS,
    count_parameters,
    energy_meter_for,
    measure_idle_power,
    profile,
    serialized_size_mb,
    state_meter_for,
)
from hwtune.hardware._rapl import (
    RaplEnergyMeter,
    accumulate_counter,
    counter_delta,
    find_rapl_zones,
)
from hwtune.hardware._runner import OnnxModel, as_runner, count_flops, load_model
from hwtune.hardware._remote import RemoteAgentError, RemoteDevice, parse_remote
from hwtune.hardware._remote_meter import RemoteMeter, remote_meter
from hwtune.hardware._reference import (
    REFERENCE_NAME,
    measure_reference_speed,
    reference_call,
)
from hwtune.hardware._windows import (
    WindowedResult,
    WindowRecord,
    measure_in_windows,
    summarize_windows,
)

__all__ = [
    # devices
    "CPUDevice",
    "CUDADevice",
    "Device",
    "parse_device",
    "available_cpu_count",
    "RemoteDevice",
    "RemoteMeter",
    "remote_meter",
    "RemoteAgentError",
    "parse_remote",
    # results
    "HardwareReport",
    "Measurement",
    "BATCH_METRICS",
    "format_report",
    # the entry point
    "profile",
    "PROFILE_METRICS",
    "load_model",
    # runtimes and converters (issue 13)
    "RUNTIMES",
    "DEFAULT_RUNTIME",
    "check_runtime",
    "profile_in_runtime",
    "export_onnx",
    "export_torchscript",
    "ExportError",
    "onnx_batch_dim",
    "label_runtime",
    "runtime_source",
    "runtime_of_file",
    "OnnxModel",
    "as_runner",
    "count_parameters",
    "count_flops",
    "serialized_size_mb",
    "measure_idle_power",
    # latency
    "LatencyResult",
    "median_confidence_interval",
    "time_until_confident",
    "warm_up",
    "CudaEventTimer",
    "measure_in_windows",
    "summarize_windows",
    "WindowRecord",
    "WindowedResult",
    "REFERENCE_NAME",
    "reference_call",
    "measure_reference_speed",
    # decisions near a bound
    "straddles",
    "pool_measurements",
    "remeasure_until_decided",
    "decide_near_bounds",
    # meters
    "Meter",
    "EnergyMeter",
    "MeterGroup",
    "Window",
    "DeviceState",
    "energy_meter_for",
    "state_meter_for",
    "RaplEnergyMeter",
    "find_rapl_zones",
    "counter_delta",
    "accumulate_counter",
    "NVMLEnergyMeter",
    "NVMLPowerMeter",
    "NVMLStateMeter",
    "NVMLUnavailable",
    "integrate_power",
    "CPUStateMeter",
    "CPUUtilisationEstimateMeter",
    "CPUMemoryMeter",
    "CUDAMemoryMeter",
]
