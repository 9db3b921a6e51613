"""Relative limits calibrated on the device: a fake meter, the stored limit and its provenance, resume."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from hwtune import Study
from hwtune.exceptions import ConfigError
from hwtune.hardware import HardwareReport, Measurement
from hwtune.study._calibrate import DEFAULT_SAMPLES, Calibration
from hwtune.vocabulary import CONFIG_ATTR
from tests.study import _doubles as d

SPACE = {
    "width": {"type": "int", "low": 1, "high": 100, "role": "architecture"},
    "lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "role": "training"},
}


class Meter:
    """Latency = width * scale ms (deterministic); counts its calls."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls = 0

    def __call__(self, model, params):
        self.calls += 1
        lat = float(model["width"]) * self.scale
        return HardwareReport(
            {"latency_ms": Measurement("latency_ms", lat, "ms", "measured:test-double", lat, lat, 10)},
            {"name": "fake device"},
        )


def _study(url=None, constraint="latency_ms <= q40", **kw):
    kw.setdefault("sampler", "random")
    return Study("cal", SPACE, constraints=[constraint], storage=url, device="cpu:1", **kw)


def test_calibration_with_a_fake_meter_is_the_quantile_of_random_architectures():
    meter = Meter()
    s = _study()
    cal = s.calibrate(d.build, meter)
    assert meter.calls == DEFAULT_SAMPLES == len(cal.samples)
    widths = [x["params"]["width"] for x in cal.samples]
    assert len(set(widths)) == len(widths)  # distinct architectures
    assert cal.values("latency_ms") == [float(w) for w in widths]
    expected = float(np.quantile(widths, 0.4))
    assert cal.limits == {"latency_ms <= q40": pytest.approx(expected)}
    (c,) = s.constraints
    assert c.is_resolved and c.bound == pytest.approx(expected) and c.text == "latency_ms <= q40"
    # deterministic: the same seed draws the same architectures
    again = _study().calibrate(d.build, Meter())
    assert again.limits == cal.limits
    # provenance in words, for `hwtune run`
    text = cal.describe()
    assert "latency_ms <= q40" in text and f"{expected:.4g}" in text and f"{DEFAULT_SAMPLES} random architectures" in text
    assert "cpu:1" in text and "batch 1" in text


def test_absolute_limit_and_provenance_are_stored_and_trials_use_it(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    meter = Meter()
    s = _study(url, cost_model=None)  # every proposal measured: the limit decides each status
    s.optimize(d.build, d.train, measure=meter, n_trials=12)
    limit = s.constraints[0].bound
    cfg = optuna.load_study(study_name="cal", storage=url).user_attrs[CONFIG_ATTR]
    assert cfg["constraints"] == ["latency_ms <= q40"]  # as written
    cal = cfg["calibration"]
    assert cal["limits"] == {"latency_ms <= q40": pytest.approx(limit)}
    assert cal["quantiles"] == {"latency_ms <= q40": 0.4}
    assert cal["n_measured"] == cal["requested"] == DEFAULT_SAMPLES
    assert cal["device"] == "cpu:1" and cal["device_info"] == {"name": "fake device"} and cal["inference_batch_size"] == 1
    assert cal["created"] and set(cal["spread"]["latency_ms"]) == {"min", "p10", "median", "p90", "max"}
    assert len(cal["samples"]) == DEFAULT_SAMPLES
    recs = s.records()
    assert any(r.status == "over_budget" for r in recs) and any(r.status == "trained" for r in recs)
    for r in recs:
        lat = r.hardware["latency_ms"].value
        assert (r.status == "over_budget") == (lat > limit), (r.status, lat, limit)


@pytest.mark.parametrize("feed", [True, False])
def test_calibration_measurements_can_feed_the_cost_model(tmp_path, monkeypatch, feed):
    from hwtune.study import _calibrate

    monkeypatch.setattr(_calibrate, "FEED_COST_MODEL", feed)
    s = _study(f"sqlite:///{tmp_path / 's.db'}", cost_model="additive")
    s.calibrate(d.build, Meter())
    s.open()
    assert s._costs.n_observations("latency_ms") == (DEFAULT_SAMPLES if feed else 0)


def test_resume_uses_the_stored_limit_without_measuring(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = _study(url)
    first.optimize(d.build, d.train, measure=Meter(), n_trials=4)
    limit = first.constraints[0].bound

    slower = Meter(scale=10.0)  # a re-calibration would find a limit 10x higher
    resumed = _study(url)
    cal = resumed.calibrate(d.build, slower)
    assert slower.calls == 0
    assert cal.resumed and resumed.constraints[0].bound == limit
    assert "not re-measured" in cal.describe()
    resumed.optimize(d.build, d.train, measure=slower, n_trials=6)
    assert resumed.constraints[0].bound == limit
    assert slower.calls <= 2  # only the two new trials were measured
    cfg = optuna.load_study(study_name="cal", storage=url).user_attrs[CONFIG_ATTR]
    assert cfg["calibration"]["limits"]["latency_ms <= q40"] == limit


def test_a_study_opened_before_calibration_is_calibrated_and_stored(tmp_path):
    """``hwtune run`` opens the study for its progress bar before the loop calibrates."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    s = _study(url)
    s.open()  # a new study with the limit still unresolved: nothing evaluates it
    assert not s.constraints[0].is_resolved
    s.optimize(d.build, d.train, measure=Meter(), n_trials=3)
    cfg = optuna.load_study(study_name="cal", storage=url).user_attrs[CONFIG_ATTR]
    assert cfg["calibration"]["limits"]["latency_ms <= q40"] == s.constraints[0].bound


def test_changed_quantile_is_a_definition_change_refused_before_measuring(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _study(url).optimize(d.build, d.train, measure=Meter(), n_trials=2)
    meter = Meter()
    with pytest.raises(ConfigError) as e:
        _study(url, "latency_ms <= q30").optimize(d.build, d.train, measure=meter, n_trials=4)
    assert e.value.field == "constraints" and "q30" in str(e.value)
    assert meter.calls == 0
    with pytest.raises(ConfigError):  # an absolute limit instead of the relative one, too
        _study(url, "latency_ms <= 40").optimize(d.build, d.train, measure=meter, n_trials=4)


def test_relative_limit_on_a_quality_metric_is_refused_by_the_study():
    with pytest.raises(ConfigError) as e:
        Study("q", SPACE, constraints=["error <= q30"])
    assert e.value.field == "constraints[0]" and "error" in str(e.value)


def test_calibration_needs_enough_measurable_architectures():
    def broken(model, params):
        if model["width"] > 10:
            raise RuntimeError("out of memory")
        return Meter()(model, params)

    with pytest.raises(ConfigError) as e:
        _study().calibrate(d.build, broken)
    assert e.value.field == "constraints" and "out of memory" in str(e.value) and e.value.fix


def test_a_meter_without_the_metric_is_a_config_error():
    def no_latency(model, params):
        return HardwareReport({"params": Measurement("params", 10.0, "1", "counted")})

    with pytest.raises(ConfigError) as e:
        _study().calibrate(d.build, no_latency)
    assert "latency_ms" in str(e.value)


def test_absolute_limits_are_untouched():
    meter = Meter()
    s = _study(constraint="latency_ms <= 5")
    assert s.calibrate(d.build, meter) is None and meter.calls == 0
    assert s.definition()["constraints"] == ["latency_ms <= 5"]


def test_calibration_round_trips_through_its_stored_form():
    s = _study()
    cal = s.calibrate(d.build, Meter())
    back = Calibration.from_dict(cal.to_dict())
    assert back.limits == cal.limits and back.samples == cal.samples and back.resumed
    assert all(math.isfinite(v) for v in back.values("latency_ms"))


def test_the_default_study_uses_a_relative_latency_limit():
    from hwtune.study import default_study_file

    spec = default_study_file()
    assert len(spec.constraints) == 1 and spec.constraints[0].replace(" ", "").startswith("latency_ms<=q")
