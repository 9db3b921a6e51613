"""``profile(model, example_input, device)``: the one entry point for measuring a model.

For each batch size, in one call:

1. peak memory: on a CPU, the tensors of one traced inference (weights + input + the peak of live
   intermediates, independent of the process's history); on a GPU, the CUDA allocator's peak;
   for ONNX models on a CPU, resident-set growth;
2. untimed warm-up (of the network and of the fixed reference network);
3. latency over several short windows (``_windows.py``), each bracketed by the reference network and
   checked by the device-state meter: flagged windows are repeated (bounded) or kept and widen the
   interval; the interval comes from the spread between windows joined with the samples' own; the
   latency relative to the reference is reported beside it (``extra["rel_to_ref"]``);
4. power over one window of the network alone (RAPL / NVML counter / NVML power sampling / labelled
   estimate); ``energy_mj = power_w x latency_ms / batch`` by construction.

Parameters, FLOPs and serialized size are counted once per model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hwtune.hardware._cpu import (
    CPUStateMeter,
    CPUUtilisationEstimateMeter,
    process_cpu_seconds,
)
from hwtune.hardware._device import CPUDevice, CUDADevice
from hwtune.hardware._latency import CudaEventTimer, warm_up
from hwtune.hardware._measurement import (
    BATCH_METRICS,
    HardwareReport,
    Measurement,
    unavailable,
)
from hwtune.hardware._memory import (
    CPUMemoryMeter,
    CUDAMemoryMeter,
    current_rss_bytes,
    traced_peak_measurement,
)
from hwtune.hardware._meters import (
    EnergyMeter,
    Meter,
    MeterGroup,
    UnavailableEnergyMeter,
    Window,
    say_once,
)
from hwtune.hardware._nvml import (
    GPUUtilisationEstimateMeter,
    NVMLEnergyMeter,
    NVMLPowerMeter,
    NVMLStateMeter,
    NVMLUnavailable,
    has_energy_counter,
    has_power_reading,
)
from hwtune.hardware._rapl import RaplEnergyMeter, rapl_zones
from hwtune.hardware._reference import REFERENCE_NAME, reference_call
from hwtune.hardware._runner import (
    ModelRunner,
    as_runner,
    count_parameters,
    serialized_size_mb,
)
from hwtune.hardware._windows import WindowedResult, measure_in_windows
from hwtune.space._metrics import METRICS

__all__ = [
    "PROFILE_METRICS",
    "clear_idle_cache",
    "count_parameters",
    "energy_meter_for",
    "measure_idle_power",
    "profile",
    "serialized_size_mb",
    "state_meter_for",
]

PROFILE_METRICS = ("latency_ms", "throughput_sps", "power_w", "energy_mj", "peak_mem_mb", "params", "flops", "size_mb")
"""Metrics :func:`profile` produces (the hardware part of the metric vocabulary)."""

MIN_ENERGY_WINDOW_S = {
    RaplEnergyMeter: 0.1,
    CPUUtilisationEstimateMeter: 0.25,  # process CPU time ticks at 10 ms
    NVMLEnergyMeter: 0.5,  # the counter advances in steps of tens of milliseconds
    NVMLPowerMeter: 0.5,
    GPUUtilisationEstimateMeter: 0.5,
}
"""Shortest measurement window per energy meter; the window is stretched with inferences to reach it."""


# --------------------------------------------------------------------------- meter selection


def energy_meter_for(device: Any, *, estimate: bool = True, cpu_tdp_w: float | None = None) -> Callable[[], EnergyMeter]:
    """A factory of the best energy meter for ``device``: a sensor, else a labelled estimate
    (when ``estimate``), else an :class:`UnavailableEnergyMeter` that says why.

    The reason a sensor is missing is logged once per process.
    """
    if device.kind == "cpu":
        zones, reason = rapl_zones()
        if zones:
            return lambda: RaplEnergyMeter(zones)
        say_once(f"rapl:{reason}", f"CPU energy cannot be measured here: {reason}")
        if estimate:
            return lambda: CPUUtilisationEstimateMeter(cpu_tdp_w, reason=f"RAPL unavailable: {reason}")
        return lambda: UnavailableEnergyMeter(f"RAPL unavailable: {reason}")
    try:
        nv, h = device.nvml()
    except NVMLUnavailable as e:
        why = f"NVML unavailable: {e}"
        say_once(f"nvml:{e}", f"GPU power and energy cannot be measured: {e}")
        return lambda: UnavailableEnergyMeter(why)
    if has_energy_counter(nv, h):
        return lambda: NVMLEnergyMeter(nv, h)
    if has_power_reading(nv, h):
        return lambda: NVMLPowerMeter(nv, h)
    reason = "this GPU reports neither an energy counter nor power through NVML"
    say_once(f"nvml-power:{device.to_spec()}", f"GPU energy cannot be measured on {device.to_spec()}: {reason}")
    if estimate:
        return lambda: GPUUtilisationEstimateMeter(nv, h)
    return lambda: UnavailableEnergyMeter(reason)


def state_meter_for(device: Any) -> Callable[[], Meter] | None:
    """A factory of the device-state meter wrapped around each short window, or ``None`` where the
    state cannot be read: :class:`CPUStateMeter` on a CPU (runnable tasks, other processes on our
    cores, steal time, frequency), NVML's state meter on a GPU (utilisation, throttle reasons).
    """
    if device.kind == "cpu":
        threads = device.resolved_threads()
        return lambda: CPUStateMeter(threads)
    try:
        nv, h = device.nvml()
    except NVMLUnavailable as e:
        say_once(f"nvml-state:{e}", f"GPU state (utilisation, clocks, throttling) cannot be read: {e}")
        return None
    return lambda: NVMLStateMeter(nv, h)


_IDLE_CACHE: dict[tuple[str, str], tuple[float, float, float]] = {}


def clear_idle_cache() -> None:
    _IDLE_CACHE.clear()


def measure_idle_power(
    device: Any,
    seconds: float = 1.0,
    *,
    max_age_s: float = 600.0,
    energy_meter: Callable[[], EnergyMeter] | None = None,
) -> tuple[float | None, str]:
    """Idle power of ``device`` over ``seconds`` of sleep, cached for ``max_age_s`` per device.

    Returns:
        ``(watts, note)``; ``watts`` is ``None`` (and ``note`` says why) where there is no sensor:
        no baseline is taken from an estimate.
    """
    factory = energy_meter or energy_meter_for(device, estimate=False)
    probe = factory()
    if isinstance(probe, UnavailableEnergyMeter):
        return None, f"no idle baseline: {probe.reason}"
    if not probe.source.startswith("measured"):
        why = getattr(probe, "reason", None)
        return None, f"no idle baseline subtracted: power here is an estimate ({probe.source})" + (f"; {why}" if why else "")
    key = (device.to_spec(), probe.source)
    now = time.monotonic()
    hit = _IDLE_CACHE.get(key)
    if hit is not None and now - hit[0] <= max_age_s:
        return hit[1], f"idle baseline {hit[1]:.3g} W subtracted (measured over {hit[2]:g} s, {now - hit[0]:.0f} s ago)"
    device.sync()
    probe.begin()
    time.sleep(seconds)
    probe.end()
    energy, note, _ = probe.energy_j()
    if energy is None:
        return None, f"no idle baseline: {note}"
    watts = energy / probe.duration_s
    _IDLE_CACHE[key] = (now, watts, seconds)
    return watts, f"idle baseline {watts:.3g} W subtracted (measured over {seconds:g} s just before)"


# --------------------------------------------------------------------------- profile


def _check_metrics(metrics: Iterable[str] | None) -> list[str]:
    wanted = list(metrics) if metrics is not None else list(PROFILE_METRICS)
    unknown = [m for m in wanted if m not in PROFILE_METRICS]
    if unknown:
        raise ValueError(f"profile cannot measure {unknown}; it measures {list(PROFILE_METRICS)}")
    return wanted


def _check_batches(batch_sizes: Sequence[int] | None, default: int) -> list[int]:
    if batch_sizes is None:
        return [default]
    out: list[int] = []
    for b in batch_sizes:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r}")
        if b not in out:
            out.append(b)
    if not out:
        raise ValueError("batch_sizes is empty")
    return out


def _latency_measurements(
    res: WindowedResult, batch: int, extra: dict[str, Any], note: str | None, scaled: bool = False
) -> dict[str, Measurement]:
    """Latency and throughput from one windowed result; ``scaled``: the result is at the reference's
    speed (source ``measured:timer/reference``), not the wall clock's."""
    source = "measured:timer/reference" if scaled else "measured:timer"
    lat = Measurement("latency_ms", res.median_ms, METRICS["latency_ms"].unit, source, res.ci_low_ms, res.ci_high_ms, res.repeats, note, extra)
    thr = Measurement(
        "throughput_sps", batch / res.median_ms * 1000.0, METRICS["throughput_sps"].unit, source,
        batch / res.ci_high_ms * 1000.0, batch / res.ci_low_ms * 1000.0, res.repeats,
        "batch size / median latency" + (f"; {note}" if note else ""), extra,
    )
    return {"latency_ms": lat, "throughput_sps": thr}


def _provenance_warnings(groups: Iterable[dict[str, Measurement]]) -> list[str]:
    """One line per reason a value is estimated or unavailable, naming the metrics it concerns."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for ms in groups:
        for m in ms.values():
            if m.estimated or not m.available:
                key = ("estimated" if m.estimated else "unavailable", m.source, m.note or "")
                if m.metric not in seen.setdefault(key, []):
                    seen[key].append(m.metric)
    out = []
    for (status, source, note), names in seen.items():
        head = ", ".join(names)
        if status == "estimated":
            out.append(f"{head}: ESTIMATED ({source}), not measured: {note}")
        else:
            out.append(f"{head}: unavailable: {note or 'no reading'}")
    return out


def _profile_batch(
    runner: ModelRunner,
    device: Any,
    x: Any,
    batch: int,
    wanted: list[str],
    *,
    target_rel_ci: float,
    max_time_s: float,
    max_retries: int,
    windows: int,
    window_s: float,
    reference: bool,
    reference_ms: float | None = None,
    warmup_runs: int,
    warmup_s: float,
    min_repeats: int,
    min_energy_window_s: float | None,
    rss_baseline: int | None,
    energy_factory: Callable[[], EnergyMeter] | None,
    state_factory: Callable[[], Meter] | None,
    baseline: tuple[float | None, str] | None,
    warnings: list[str],
) -> dict[str, Measurement]:
    cuda_torch = device.kind == "cuda" and runner.supports_cuda_allocator
    sync = device.sync if cuda_torch else None
    call = runner.call_for(x)
    out: dict[str, Measurement] = {}

    def run_once() -> None:
        call()
        if sync:
            sync()

    # 1. memory, over the first inferences (later ones reuse cached memory)
    if "peak_mem_mb" in wanted:
        if device.kind == "cpu" and runner.kind == "torch":
            out["peak_mem_mb"] = traced_peak_measurement(runner.model, tuple(x) if isinstance(x, tuple) else (x,), batch)
        else:
            mem: Meter | None = None
            if device.kind == "cpu":
                mem = CPUMemoryMeter(rss_baseline)
            elif cuda_torch:
                mem = CUDAMemoryMeter(device.index)
            if mem is None:
                out["peak_mem_mb"] = unavailable("peak_mem_mb", "MB", "ONNX Runtime's CUDA memory arena is not visible to hwtune", batch_size=batch)
            else:
                g = MeterGroup([mem])
                with g.window():
                    run_once()
                    run_once()
                out.update(g.measurements(Window(g.duration_s, 2, batch)))

    timed = [m for m in ("latency_ms", "throughput_sps", "power_w", "energy_mj") if m in wanted]
    if not timed:
        return out

    # 2. warm-up, untimed (the reference too: it is built once per process and device)
    warm = warm_up(call, runs=warmup_runs, seconds=warmup_s, sync=sync)
    ref = reference_call(device) if reference else None
    if ref is not None:
        warm_up(ref, runs=3, seconds=0.0, sync=sync)
    timer = CudaEventTimer(device.index) if cuda_torch else None
    want_energy = "power_w" in wanted or "energy_mj" in wanted

    # 3. latency over short windows, each bracketed by the reference and checked by the state meter
    t0 = time.perf_counter()
    cpu0 = process_cpu_seconds()
    res = measure_in_windows(
        call, reference=ref, probe=state_factory, target_rel_ci=target_rel_ci, max_time_s=max_time_s,
        windows=windows, window_s=window_s, min_per_window=max(3, -(-min_repeats // max(windows, 1))),
        max_flagged_repeats=windows * max(0, max_retries), sync=sync, timer=timer,
        clock_name="cuda_events" if timer is not None else "wall",
        converge_on_ratio=reference_ms is not None and ref is not None,
    )
    wall = res
    if reference_ms is not None and res.ratio is not None:
        res = res.at_reference_speed(reference_ms)  # the latency at the study's reference speed
    wall_s = time.perf_counter() - t0
    cpu_s = process_cpu_seconds() - cpu0
    measured_at = time.time()
    notes: list[str] = []
    if not res.converged:
        cap = (f"time cap {max_time_s:g} s or {res.windows} windows reached before the CI reached ±{target_rel_ci:.0%} "
               f"(it is ±{res.rel_half_width:.1%}; wall clock ±{wall.between_rel_half_width:.1%} between windows)")
        notes.append(cap)
        warnings.append(f"batch {batch}: latency {cap}")
    if res.flagged:
        why = "; ".join(res.reasons[:3])
        if res.flagged_used:
            msg = (f"device disturbed in {res.flagged} of {res.windows + res.repeated} windows ({why}); too few clean windows: "
                   f"the {res.flagged_used} disturbed ones are kept in the estimate and widen its interval: treat with care")
        else:
            msg = f"device disturbed in {res.flagged} windows ({why}); repeated, the estimate uses the {res.windows} undisturbed ones"
        notes.append(msg)
        warnings.append(f"batch {batch}: {msg}")
    state_dict = {("cuda" if device.kind == "cuda" else "cpu"): {"busy": res.flagged > 0, "flagged_windows": res.flagged, "reasons": list(res.reasons[:5])}}
    ref_extra: dict[str, Any] = {}
    if res.ref_ms is not None and res.ratio is not None:
        ref_extra = {
            "reference": REFERENCE_NAME,
            "ref_ms": round(res.ref_ms, 6),
            "ref_ci_ms": [round(v, 6) for v in res.ref_ci] if res.ref_ci else None,
            "rel_to_ref": round(res.ratio, 6),
            "rel_to_ref_ci": [round(v, 6) for v in res.ratio_ci] if res.ratio_ci else None,
            "window_ref_ms": [round(v, 6) for v in res.window_ref_ms],
        }
    if res is not wall:
        ref_extra.update({
            "at_reference_ms": reference_ms,
            "wall_ms": round(wall.median_ms, 6),
            "wall_ci_ms": [round(wall.ci_low_ms, 6), round(wall.ci_high_ms, 6)],
            "wall_window_medians_ms": [round(v, 6) for v in wall.window_medians_ms],
        })
        notes.insert(0, (
            f"at the reference speed: {res.ratio:.4g} x hwtune's reference network (measured in the same windows) "
            f"x its {reference_ms:.4g} ms stored with the study; wall clock now {wall.median_ms:.4g} ms "
            f"[{wall.ci_low_ms:.4g}, {wall.ci_high_ms:.4g}] with the reference at {wall.ref_ms:.4g} ms"
        ))
    extra: dict[str, Any] = {
        "batch_size": batch,
        "threads": device.resolved_threads(),
        "converged": res.converged,
        "rel_half_width": round(res.rel_half_width, 5),
        "between_windows_rel_half_width": round(res.between_rel_half_width, 5),
        "within_windows_rel_half_width": round(res.within_rel_half_width, 5),
        "target_rel_ci": target_rel_ci,
        "outliers": res.outliers,
        "min_ms": round(res.min_ms, 6),
        "p10_ms": round(res.p10_ms, 6),
        "warmup": warm,
        "clock": res.clock,
        # this process's CPU time per network call over the windows (reference calls included in
        # the numerator are few and small; see "ref_ms"): unlike wall time it does not grow while
        # other processes hold the CPU
        "process_cpu_ms_per_call": round(cpu_s * 1000.0 / max(res.repeats, 1), 6),
        "windows": res.windows,
        "window_medians_ms": [round(v, 6) for v in res.window_medians_ms],
        "attempts": res.windows + res.repeated,
        "disturbed_attempts": res.flagged,
        "repeated_windows": res.repeated,
        "flagged_windows_used": res.flagged_used,
        "measuring_s": round(wall_s, 4),
        "measured_at": round(measured_at, 3),
        **ref_extra,
        "state": state_dict,
    }
    note = "; ".join(notes) or None
    lat = _latency_measurements(res, batch, extra, note, scaled=res is not wall)
    out.update({k: v for k, v in lat.items() if k in wanted})
    if want_energy:
        out.update(_energy_window(run_once, energy_factory, baseline, res, batch, min_energy_window_s, wanted, state_dict))
    return out


def _energy_window(
    run_once: Callable[[], None],
    energy_factory: Callable[[], EnergyMeter] | None,
    baseline: tuple[float | None, str] | None,
    res: WindowedResult,
    batch: int,
    min_energy_window_s: float | None,
    wanted: list[str],
    state_dict: dict[str, Any],
) -> dict[str, Measurement]:
    """Power over a window of the network alone; energy per sample = that power x the batch latency / batch.

    One definition each (docs/study-files.md): ``power_w`` is the mean power of the device while it
    runs the network (idle included unless a baseline is subtracted, which the value then says);
    ``energy_mj`` is ``power_w x latency_ms / batch_size``, so that ``energy = power x time`` holds by
    construction with the reported latency. The window's own energy per sample is kept in ``extra``.
    """
    if energy_factory is None:
        return {k: unavailable(k, METRICS[k].unit, "no energy meter for this device") for k in ("power_w", "energy_mj") if k in wanted}
    energy = energy_factory()
    if baseline is not None and baseline[0] is not None:
        energy.baseline_w, energy.baseline_note = baseline
    need = min_energy_window_s if min_energy_window_s is not None else MIN_ENERGY_WINDOW_S.get(type(energy), 0.0)
    group = MeterGroup([energy])
    calls = 0
    group.begin()
    t0 = time.perf_counter()
    while calls < 1 or time.perf_counter() - t0 < need:
        run_once()
        calls += 1
    group.end()
    ms = group.measurements(Window(group.duration_s, calls, batch))
    out: dict[str, Measurement] = {}
    p = ms.get("power_w") or unavailable("power_w", "W", "no energy meter for this device")
    e_window = ms.get("energy_mj")
    common = {"state": state_dict}
    if "power_w" in wanted:
        out["power_w"] = Measurement(p.metric, p.value, p.unit, p.source, None, None, calls, p.note, {**p.extra, **common})
    if "energy_mj" in wanted:
        if not p.available:
            out["energy_mj"] = Measurement("energy_mj", None, "mJ", p.source, note=p.note, extra={**p.extra, **common})
        else:
            w = float(p.value)  # type: ignore[arg-type]
            e_extra = {
                **p.extra, **common,
                "definition": "power_w x latency_ms / batch_size",
                "power_w": w,
                "latency_ms": res.median_ms,
                "window_mj_per_sample": e_window.value if e_window is not None else None,
                "window_ms_per_call": round(group.duration_s * 1000.0 / calls, 6),
            }
            out["energy_mj"] = Measurement(
                "energy_mj", w * res.median_ms / batch, "mJ", p.source,
                w * res.ci_low_ms / batch, w * res.ci_high_ms / batch, calls,
                p.note, e_extra,
            )
    return out


def profile(
    model: Any,
    example_input: Any,
    device: CPUDevice | CUDADevice | None = None,
    metrics: Iterable[str] | None = None,
    *,
    target_rel_ci: float = 0.05,
    max_time_s: float = 3.0,
    batch_sizes: Sequence[int] | None = None,
    idle_baseline: bool | float = False,
    max_retries: int = 1,
    estimate_energy: bool = True,
    cpu_tdp_w: float | None = None,
    min_energy_window_s: float | None = None,
    warmup_runs: int = 3,
    warmup_s: float = 0.05,
    min_repeats: int = 10,
    windows: int = 5,
    window_s: float = 0.05,
    reference: bool = True,
    reference_ms: float | None = None,
) -> HardwareReport:
    """Measure ``model`` on ``device`` with ``example_input``.

    Args:
        model: a ``torch.nn.Module`` (TorchScript included), an :class:`OnnxModel`, or a runner
            from :func:`load_model`. A PyTorch model is moved to the device and put in eval mode.
        example_input: one batch, shape ``(batch, ...)`` (a tuple of tensors for several inputs);
            other batch sizes repeat its first sample.
        device: :class:`CPUDevice` (default, all CPUs) or :class:`CUDADevice`.
        metrics: subset of :data:`PROFILE_METRICS`; default all. Params, FLOPs and size are
            counted once; the others are measured per batch size. Only what is asked is measured.
        target_rel_ci: latency stops when the median's 95 % CI half-width is within this share
            (0.05 suits a search; ``hwtune profile`` uses 0.03).
        max_time_s: latency time cap per window.
        batch_sizes: batch sizes to measure (the first is the report's primary one); default: the
            example input's.
        idle_baseline: ``True``: measure the idle power once (1 s, cached 10 min per device) and
            subtract it, saying so; a number: subtract that many watts. Never from an estimate.
        max_retries: flagged windows (device busy or throttling) are repeated up to
            ``windows x max_retries`` times in all; beyond that they are kept and widen the interval.
        estimate_energy: where no sensor exists, give a labelled ``estimated:tdp`` value
            (``False``: leave power and energy unavailable, with the reason).
        cpu_tdp_w: TDP for the CPU estimate (default ``HWTUNE_CPU_TDP_W`` or 85 W).
        min_energy_window_s: shortest window for energy (default per meter, 0.1–0.5 s).
        warmup_runs, warmup_s: untimed inferences before timing: at least this many and this long.
        min_repeats: fewest timed inferences in all (spread over the windows, at least 3 each).
        windows: fewest short windows the repeats are spread over (more are added until the
            interval is within ``target_rel_ci`` or ``max_time_s`` is spent).
        window_s: shortest time the network is timed in each window.
        reference: bracket every window with hwtune's fixed reference network, and report the
            latency relative to it (``extra["rel_to_ref"]``) beside the absolute one.
        reference_ms: report latency (and throughput, energy) at the speed where the reference takes
            this long (a study's stored :func:`measure_reference_speed`): ratio to the reference x
            ``reference_ms``, source ``measured:timer/reference``, the wall clock's values in
            ``extra`` (``wall_ms``, ``wall_ci_ms``); the repeats stop on the ratio's interval. A
            slow-down of the whole machine then leaves the value where it was.

    Returns:
        A report with one :class:`Measurement` per requested metric (primary batch size) and
        ``batches`` with the batch-dependent ones of every batch size, each labelled with its source.
    """
    device = device or CPUDevice()
    wanted = _check_metrics(metrics)
    runner = as_runner(model)
    batches = _check_batches(batch_sizes, runner.batch_of(example_input))
    dynamic = [m for m in wanted if m in BATCH_METRICS]
    warnings: list[str] = []
    static: dict[str, Measurement] = {}
    per_batch: dict[int, dict[str, Measurement]] = {}
    with device.activate():
        runner.prepare(device)
        if "params" in wanted:
            static["params"] = runner.params()
        if "size_mb" in wanted:
            static["size_mb"] = runner.size()
        with runner.context():
            if dynamic:
                want_energy = "power_w" in dynamic or "energy_mj" in dynamic
                energy_factory = energy_meter_for(device, estimate=estimate_energy, cpu_tdp_w=cpu_tdp_w) if want_energy else None
                state_factory = state_meter_for(device)
                if state_factory is None:
                    warnings.append("device state (utilisation, clocks, throttling) could not be read: disturbances go unnoticed")
                baseline: tuple[float | None, str] | None = None
                if want_energy and idle_baseline is not False and energy_factory is not None:
                    if isinstance(idle_baseline, bool):
                        baseline = measure_idle_power(device, energy_meter=energy_factory)
                    else:
                        baseline = (float(idle_baseline), f"idle baseline {float(idle_baseline):.3g} W subtracted (given)")
                    if baseline[0] is None:
                        warnings.append(baseline[1])
                rss_baseline = current_rss_bytes() if device.kind == "cpu" and "peak_mem_mb" in dynamic else None
                for b in sorted(batches):  # ascending, so memory growth builds on the smaller batches
                    x = runner.make_batch(example_input, b)
                    per_batch[b] = _profile_batch(
                        runner, device, x, b, dynamic,
                        target_rel_ci=target_rel_ci, max_time_s=max_time_s, max_retries=max_retries,
                        windows=windows, window_s=window_s, reference=reference, reference_ms=reference_ms,
                        warmup_runs=warmup_runs, warmup_s=warmup_s, min_repeats=min_repeats,
                        min_energy_window_s=min_energy_window_s, rss_baseline=rss_baseline,
                        energy_factory=energy_factory, state_factory=state_factory,
                        baseline=baseline, warnings=warnings,
                    )
                    del x
            if "flops" in wanted:  # after the memory windows, so that its allocations are not in their baseline
                static["flops"] = runner.flops(runner.make_batch(example_input, 1))
    warnings.extend(_provenance_warnings([static, *per_batch.values()]))
    measurements: dict[str, Measurement] = {}
    primary = batches[0]
    for k in wanted:
        if k in static:
            measurements[k] = static[k]
        elif k in per_batch.get(primary, {}):
            measurements[k] = per_batch[primary][k]
    ordered = {b: per_batch[b] for b in batches} if per_batch else {}
    return HardwareReport(measurements, device.describe(), ordered, warnings)
