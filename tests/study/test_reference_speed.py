"""A study's machine speed is measured once, stored, and every latency is reported at it (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwtune.study import load_study_file, study_from_file

from .test_config import GOOD


def _study(tmp_path: Path, url: str):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(GOOD))
    return study_from_file(load_study_file(p), storage=url)


def test_the_reference_speed_is_stored_once_and_reused_by_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study, build, train = _study(tmp_path, url)
    study.optimize(build, train, n_trials=1)
    stored = study.optuna_study.user_attrs["hwtune:config"]["reference"]
    assert stored["ms"] > 0 and stored["device"] == "cpu:1" and stored["reference"].startswith("hwtune-ref")

    # a resume (a new process) must not measure the machine's speed again: the stored one wins
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the reference speed was measured again on resume")

    monkeypatch.setattr("hwtune.hardware.measure_reference_speed", boom)
    again, build, train = _study(tmp_path, url)
    summary = again.optimize(build, train, n_trials=2)
    assert sum(summary.counts.values()) == 2
    lat = [r.hardware["latency_ms"] for r in summary.records if "latency_ms" in r.hardware]
    assert lat and all(m.extra["at_reference_ms"] == stored["ms"] for m in lat)
    assert all(m.source.startswith("measured:timer/reference") for m in lat), [m.source for m in lat]
    # the machine's own speed in each measurement's windows is kept: the drift over the study
    assert all(m.extra["ref_ms"] > 0 and m.extra["measured_at"] > 0 for m in lat)
    # the summary says at which speed, and how far the machine moved from it
    ms = summary.machine_speed
    assert ms["stored_ms"] == stored["ms"] and ms["n"] == len(lat) and 0 < ms["min_ms"] <= ms["max_ms"]
