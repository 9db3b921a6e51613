"""``AdaptiveModel``: serve each request with the most accurate model of a Pareto bundle whose cost
fits the budget now.

The budget is the application's :class:`~hwtune.deploy._policy.Policy` adjusted by the device's
state (battery, temperature, throttling: :mod:`~hwtune.deploy._sensors`) and by the latencies the
model observes itself (:mod:`~hwtune.deploy._observed`); the rule and its hysteresis are
:func:`~hwtune.deploy._policy.choose`. One ONNX Runtime session per model, created on first use.
Clock, sensors and sessions are injectable, so that a test scripts the device and the load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hwtune.deploy._bundle import Bundle, BundleModel, read_bundle
from hwtune.deploy._observed import LatencyTracker, Slowdown
from hwtune.deploy._policy import (
    Budget,
    Candidate,
    Decision,
    Hysteresis,
    Modes,
    Policy,
    allowed_misses,
    choose,
    make_budget,
    misfit,
    update_modes,
)
from hwtune.deploy._sensors import Reading, Sensors, SystemSensors
from hwtune.exceptions import ConfigError

__all__ = ["AdaptiveModel", "open_session"]

logger = logging.getLogger("hwtune.deploy")

_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}

HOLD_SLOWDOWN = 1.25
"""A model left by force stays held past its hold while the observed median slowdown is more than this
times the one when it was left, or the observed tail (the policy's percentile of observed / stored) more
than ``HOLD_TAIL`` times the one then: the machine has not recovered yet. Contention on a core moves the
tail of short requests far more than their median (the scheduler lets a short sleeper run first)."""
HOLD_TAIL = 1.5

MIN_SCALE_REQUESTS = 10
"""``Hysteresis.miss_scales_s``: a scale is tested once it holds this many requests."""
MIN_STREAK_S = 0.05
"""A streak of misses (``Hysteresis.miss_streak``) counts once it has lasted this long: a burst of a few
milliseconds (a scheduler slice, the hypervisor's steal) makes several short requests in a row miss."""


def open_session(path: Path, threads: int | None = 1, providers: list[Any] | None = None) -> Any:
    """An ONNX Runtime ``InferenceSession`` for ``path`` (sequential, ``threads`` intra-op threads).

    Raises:
        ConfigError: onnxruntime is missing, or the file is not a model ONNX Runtime can load.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("onnxruntime", "serving an ONNX bundle needs onnxruntime, which is not installed.", "pip install -e '.[onnx]' in a clone of hwtune (or pip install onnxruntime).") from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf/... types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(str(path), f"ONNX Runtime cannot load this model file ({first[:300]}).", "re-export the bundle with `hwtune export --pareto --format onnx --out DIR`.") from None


class AdaptiveModel:
    """The models of a Pareto bundle behind one ``predict``; see :meth:`load`.

    Args:
        bundle: a bundle read by :func:`~hwtune.deploy._bundle.read_bundle`.
        policy: what the application asks (default: no SLA, no cap: the most accurate model).
        sensors: the device's sensors (default :class:`SystemSensors`, NVML for a CUDA bundle).
        hysteresis: margin and minimum dwell against flapping.
        clock: seconds, monotonic (default ``time.perf_counter``); times the inferences too.
        window: requests in each moving percentile of observed latencies; ``max_age_s``: none
            older; ``min_samples``: fewer fresh ones, and there is no observed estimate (see
            :mod:`~hwtune.deploy._observed`: a model's own percentile first, else its stored latency
            scaled by the observed slowdown, else the stored latency as it is).
        sensor_interval_s: the sensors are read at most this often (before the choice of a request).
        threads: ONNX Runtime intra-op threads (default: the manifest device's, else 1).
        providers: ONNX Runtime execution providers (default CPU).
        session_factory: ``path -> session`` (default :func:`open_session`); a test's fake.
        recheck_every: once the dwell is over, the whole front is looked at again every this many
            requests (in between, only whether the serving model still fits: a few microseconds).
    """

    def __init__(
        self,
        bundle: Bundle,
        policy: Policy | None = None,
        *,
        sensors: Sensors | None = None,
        hysteresis: Hysteresis | None = None,
        clock: Callable[[], float] = time.perf_counter,
        window: int = 200,
        max_age_s: float = 10.0,
        min_samples: int = 20,
        sensor_interval_s: float = 1.0,
        threads: int | None = None,
        providers: list[Any] | None = None,
        session_factory: Callable[[Path], Any] | None = None,
        recheck_every: int = 10,
    ) -> None:
        self.bundle = bundle
        self.models: tuple[BundleModel, ...] = bundle.models
        self._policy = policy or Policy()
        self.hysteresis = hysteresis or Hysteresis()
        if sensors is None:
            gpu = bundle.device.get("index", 0) if bundle.device.get("type") == "cuda" else None
            sensors = SystemSensors(gpu_index=gpu)
        self.sensors = sensors
        self.clock = clock
        self.sensor_interval_s = sensor_interval_s
        threads = threads if threads is not None else (bundle.threads or 1)
        self._factory = session_factory or (lambda p: open_session(p, threads, providers))
        self._sessions: dict[int, tuple[Any, str, str]] = {}
        self._tracker = LatencyTracker(window, max_age_s, min_samples)
        self._lock = threading.RLock()
        self._readings: dict[str, Reading] = {}
        self._read_at: float | None = None
        self._modes = Modes()
        self._current: int | None = None
        self._decision: Decision | None = None
        self._switched_at = 0.0
        self._served_since = 0
        self._policy_changed = False
        self._holds: dict[int, tuple[float, float, str, tuple[float, float] | None]] = {}  # rank -> (until, length s, why, (median, tail) slowdown when left)
        self._budget_cache: Budget | None = None
        self._slow_cache: tuple[int, Slowdown] | None = None
        self._checked_at = 0
        self.recheck_every = max(1, int(recheck_every))
        self._requests = 0
        self._switches = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=20)
        self._last_batch = bundle.batch_sizes[0]
        self.last_served: BundleModel | None = None
        """The model that answered the latest ``predict``."""

    @classmethod
    def load(cls, folder: str | Path, policy: Policy | None = None, **options: Any) -> AdaptiveModel:
        """Read the bundle in ``folder`` (``manifest.json`` and its ONNX files; sessions open lazily).

        Raises:
            ConfigError: the manifest or a model file is missing or invalid (named, with the fix).
        """
        return cls(read_bundle(folder), policy, **options)

    # -- policy ------------------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        return self._policy

    def set_policy(self, policy: Policy) -> None:
        """A new policy: takes effect at the next request, without waiting for the dwell."""
        if not isinstance(policy, Policy):
            raise ConfigError("policy", f"must be a hwtune.deploy.Policy, got {type(policy).__name__}.", "build it with Policy(latency_ms=..., ...).")
        with self._lock:
            self._policy = policy
            self._policy_changed = True
            self._holds.clear()
            self._budget_cache = None
            self._modes = update_modes(policy, self._readings, self._modes) if self._readings else self._modes

    @property
    def serving(self) -> BundleModel | None:
        """The model chosen for the next request (``None`` before the first choice)."""
        return None if self._current is None else self.models[self._current]

    # -- the budget now ----------------------------------------------------------------------------
    def _read_sensors(self, now: float, force: bool = False) -> None:
        if not force and self._read_at is not None and now - self._read_at < self.sensor_interval_s:
            return
        try:
            readings = self.sensors.read()
        except Exception as e:  # noqa: BLE001 - a sensor that fails is a missing sensor, never a failed request
            readings = {n: Reading(None, missing=f"{type(self.sensors).__name__}.read() failed: {e}") for n in ("battery_percent", "power_plugged", "temperature_c", "throttling")}
        self._readings, self._read_at = dict(readings), now
        self._budget_cache = None
        before = self._modes
        self._modes = update_modes(self._policy, self._readings, before)
        for mode in ("low_battery", "hot"):
            if getattr(before, mode) != getattr(self._modes, mode) and self._current is not None:
                logger.info("device mode %s: %s (%s)", mode, getattr(self._modes, mode), self._modes.why.get(mode))

    def _budget(self) -> Budget:
        if self._budget_cache is None:  # cleared by a new policy and by every sensor reading
            self._budget_cache = make_budget(
                self._policy, self._modes,
                have_latency=any(m.latency is not None for m in self.models),
                have_energy=any(m.energy is not None for m in self.models),
            )
        return self._budget_cache

    def _expected_ms(self, m: BundleModel, batch: int) -> float | None:
        """The stored latency scaled to a request of ``batch`` (never down: see ``_observed``)."""
        if m.latency is None:
            return None
        ref = m.latency.batch_size or batch
        return m.latency.value * max(1.0, batch / ref)

    def _slowdown(self, now: float) -> Slowdown:
        return self._tracker.slowdown(now, self._policy.latency_percentile)

    def _predict_ms(self, rank: int, batch: int, slow: Slowdown, now: float) -> tuple[float | None, str]:
        """The latency of ``rank`` now at the policy's percentile, and what it is based on."""
        exp = self._expected_ms(self.models[rank], batch)
        if exp is None:
            return None, "no latency measured"
        own = self._tracker.own(now, rank, self._policy.latency_percentile)
        if own is not None:
            return exp * own[0], f"own p{self._policy.latency_percentile:g} of its last {own[1]} requests"
        if slow.source == "observed":
            pred = slow.apply(exp)
            how = f"stored x {slow.ratio:.3g}" if pred == exp * slow.ratio else f"stored x {slow.factor:.3g} + {slow.wait_ms:.3g} ms"
            return pred, how
        return exp, "stored"

    def _candidate(self, rank: int, batch: int, slow: Slowdown, now: float) -> Candidate:
        m = self.models[rank]
        sla, q = self._policy.latency_ms, self._policy.latency_percentile
        pred, _ = self._predict_ms(rank, batch, slow, now)
        misses = streak = None
        exp = self._expected_ms(m, batch)
        if rank == self._current and sla is not None and exp is not None:
            over, n = self._tracker.over(now, rank, sla / exp)  # the serving model: its own misses decide,
            share, conf = 1.0 - q / 100.0, self.hysteresis.miss_confidence
            if n >= self._tracker.min_samples:  # once there are enough of them
                misses = (over, n, allowed_misses(n, share, conf))
            for span in self.hysteresis.miss_scales_s:  # and its newest requests alone: a slowdown that began a moment ago
                o, m_ = self._tracker.over_since(now, rank, sla / exp, span)
                if MIN_SCALE_REQUESTS <= m_ < n:
                    a = allowed_misses(m_, share, conf)
                    if misses is None or o - a > misses[0] - misses[2]:
                        misses = (o, m_, a)
            if self.hysteresis.miss_streak:  # or a run of misses that lasted
                run, run_s = self._tracker.streak_over(now, rank, sla / exp)
                streak = (run if run_s >= MIN_STREAK_S else 0, self.hysteresis.miss_streak)
        return Candidate(rank, m.name, m.error, m.latency.value if m.latency else None, pred, m.energy.value if m.energy else None, misses, streak)

    def _candidates(self, batch: int, slow: Slowdown, now: float) -> list[Candidate]:
        return [self._candidate(rank, batch, slow, now) for rank in range(len(self.models))]

    def _decide(self, batch: int, now: float) -> int:
        self._read_sensors(now)
        h = self.hysteresis
        dwell_over = self._policy_changed or (self._served_since >= h.dwell_requests and now - self._switched_at >= h.dwell_s)
        cur = self._current
        if cur is not None and not self._policy_changed and (not dwell_over or self._requests - self._checked_at < self.recheck_every):
            # the common case, kept cheap (a few microseconds): only whether the serving model still fits;
            # the whole front is looked at again once the dwell is over, every recheck_every requests
            if self._slow_cache is None or self._requests - self._slow_cache[0] >= self.recheck_every:
                self._slow_cache = (self._requests, self._slowdown(now))
            if misfit(self._candidate(cur, batch, self._slow_cache[1], now), self._budget()) is None:
                return cur
        slow = self._slowdown(now)
        self._slow_cache, self._checked_at = (self._requests, slow), self._requests
        if cur in self._holds and now - self._switched_at >= self._holds[cur][1]:
            del self._holds[cur]  # it served a whole hold without having to be left: forgiven
        held = {r: why for r, hold in self._holds.items() if (why := self._held(hold, slow, now)) is not None}
        d = choose(self._candidates(batch, slow, now), self._budget(), cur, margin=h.margin, dwell_over=dwell_over, held=held)
        self._policy_changed = False
        if d.rank != cur:
            prev = cur
            if prev is not None and d.kind == "forced" and h.hold_s > 0:
                before = self._holds.get(prev)
                length = min(2 * before[1], h.max_hold_s) if before is not None else h.hold_s
                factor = (slow.factor, slow.ratio) if slow.source == "observed" else None  # the machine's speed as it was when left
                self._holds[prev] = (now + length, length, f"left at request {self._requests}: no longer fit", factor)
            self._current, self._switched_at, self._served_since = d.rank, now, 0
            new = self.models[d.rank]
            note = f" (observed: {slow.describe()})" if slow.source == "observed" else ""
            if prev is None:
                logger.info("serving %s: %s%s", new.name, d.reason, note)
            else:
                self._switches += 1
                logger.info("switch %s -> %s (%s): %s%s", self.models[prev].name, new.name, d.kind, d.reason, note)
            self._history.append({"at": now, "request": self._requests, "from": None if prev is None else self.models[prev].trial, "to": new.trial, "kind": d.kind, "reason": d.reason + note})
        self._decision = d
        return d.rank

    def _held(self, hold: tuple[float, float, str, tuple[float, float] | None], slow: Slowdown, now: float) -> str | None:
        """Why a model left by force is still held, or ``None``: for its hold, and after it while the
        observed slowdown (median, or tail) is still well above what it was when the model was left
        (``HOLD_SLOWDOWN``, ``HOLD_TAIL``: the contention that forced it out has not gone, and retrying
        would only cost misses), at most ``max_hold_s`` after leaving."""
        until, length, why, then = hold
        if until > now:
            return f"{why}; {until - now:.1f} s left of {length:g} s"
        if not self.hysteresis.hold_until_recovered or then is None or slow.source != "observed" or now - (until - length) >= self.hysteresis.max_hold_s:
            return None
        if slow.factor > HOLD_SLOWDOWN * then[0]:
            return f"{why}; the machine is still {slow.factor / then[0]:.2g}x slower (median) than when it was left"
        if slow.ratio > HOLD_TAIL * then[1]:
            return f"{why}; the machine's p{self._policy.latency_percentile:g} is still {slow.ratio / then[1]:.2g}x what it was when it was left"
        return None

    def select(self, batch: int | None = None) -> BundleModel:
        """Decide now which model serves the next request of ``batch`` samples (default: the
        manifest's first batch size), without running it."""
        with self._lock:
            b = batch or self._last_batch
            self._last_batch = b
            return self.models[self._decide(b, self.clock())]

    # -- serving -----------------------------------------------------------------------------------
    def _session(self, rank: int) -> tuple[Any, str, str]:
        s = self._sessions.get(rank)
        if s is None:
            with self._lock:
                s = self._sessions.get(rank)
                if s is None:
                    import numpy as np

                    sess = self._factory(self.models[rank].path)
                    inp = sess.get_inputs()[0]
                    s = (sess, inp.name, _ONNX_DTYPES.get(getattr(inp, "type", ""), "float32"))
                    # a fresh session's first run allocates its buffers (often 10x a normal run): done
                    # here, untimed, so that it never reads as a busy machine
                    sess.run(None, {s[1]: np.zeros((self._last_batch, *self.bundle.input_shape), dtype=s[2])})
                    self._sessions[rank] = s
        return s

    def _as_input(self, x: Any, dtype: str) -> Any:
        import numpy as np

        if hasattr(x, "detach"):  # a torch tensor
            x = x.detach().cpu().numpy()
        arr = np.ascontiguousarray(np.asarray(x, dtype=dtype))
        shape = self.bundle.input_shape
        if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
            raise ConfigError("x", f"must be a batch of shape (batch, {', '.join(map(str, shape))}) (the bundle's input shape), got {tuple(arr.shape)}.", "add the batch dimension, e.g. x[None] for one sample.")
        return arr

    def predict(self, x: Any) -> Any:
        """The outputs of the model chosen for this request (a NumPy array, ``(batch, ...)``).

        ``x``: a NumPy array or torch tensor of shape ``(batch, *input_shape)``.
        """
        batch = int(x.shape[0]) if hasattr(x, "shape") and len(x.shape) else 0
        with self._lock:
            self._last_batch = batch or self._last_batch
            rank = self._decide(self._last_batch, self.clock())
        sess, name, dtype = self._session(rank)  # created on first use, outside the timed call
        arr = self._as_input(x, dtype)
        t0 = self.clock()
        out = sess.run(None, {name: arr})
        t1 = self.clock()
        m = self.models[rank]
        with self._lock:
            exp = self._expected_ms(m, arr.shape[0])
            if exp is not None:
                self._tracker.add(t1, rank, (t1 - t0) * 1000.0, exp)
            self._requests += 1
            self._served_since += 1
            self.last_served = m
        return out[0]

    __call__ = predict

    def warm_up(self, batch: int | None = None) -> None:
        """Open every model's session and run it once on zeros (not counted as observed latency), so
        that a switch later costs no session start-up (otherwise each opens on its first request)."""
        with self._lock:
            if batch:
                self._last_batch = batch
            for rank in range(len(self.models)):
                self._session(rank)

    # -- what it is doing --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Which model serves and why, the budget and its parts, the sensors (missing ones with their
        reason), the observed slowdown and every model's fit now. Plain data (JSON-ready)."""
        with self._lock:
            now = self.clock()
            if self._read_at is None:
                self._read_sensors(now, force=True)
            slow = self._slowdown(now)
            budget = self._budget()
            cands = self._candidates(self._last_batch, slow, now)
            counts = self._tracker.counts(now)
            cur = self.serving
            models = []
            for c, m in zip(cands, self.models):
                row: dict[str, Any] = {
                    "trial": m.trial, "file": m.file, "error": m.error, "error_source": m.error_source,
                    "latency_ms": c.latency_ms, "latency_source": m.latency.describe() if m.latency else "not measured",
                    "predicted_ms": c.predicted_ms, "predicted_from": self._predict_ms(c.rank, self._last_batch, slow, now)[1], "energy_mj": c.energy_mj,
                    "energy_source": m.energy.source if m.energy else "not measured",
                    "fits": misfit(c, budget) is None, "why_not": misfit(c, budget), "loaded": c.rank in self._sessions,
                    "serving": cur is not None and m.trial == cur.trial,
                }
                row["observed_requests"] = counts.get(c.rank, 0)
                models.append(row)
            return {
                "serving": None if cur is None else {"trial": cur.trial, "file": cur.file, "error": cur.error},
                "reason": self._decision.reason if self._decision else "no request yet",
                "decision": self._decision.kind if self._decision else None,
                "since": {"requests": self._served_since, "seconds": now - self._switched_at if cur is not None else 0.0},
                "holds": {self.models[r].trial: {"until_s": max(0.0, h[0] - now), "length_s": h[1], "why": why}
                          for r, h in self._holds.items() if (why := self._held(h, slow, now)) is not None},
                "requests": self._requests,
                "switches": self._switches,
                "recent_switches": list(self._history),
                "policy": self._policy.to_dict(),
                "hysteresis": asdict(self.hysteresis),
                "budget": budget.to_dict(),
                "sensors": {k: r.to_dict() for k, r in self._readings.items()},
                "observed": {
                    "ratio": slow.ratio, "factor": slow.factor, "wait_ms": slow.wait_ms, "source": slow.source, "samples": slow.samples,
                    "percentile": self._policy.latency_percentile, "batch": self._last_batch, "note": slow.describe(),
                },
                "models": models,
            }

    def readings(self) -> Mapping[str, Reading]:
        """The latest sensor readings (read now if never read)."""
        with self._lock:
            if self._read_at is None:
                self._read_sensors(self.clock(), force=True)
            return dict(self._readings)
