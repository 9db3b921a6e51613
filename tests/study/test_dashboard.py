"""hwtune studies in optuna-dashboard (issue 18), through the real package's HTTP API on loopback:
objective names, the hardware metrics as numbers it can sort and plot, over-budget trials told apart,
and (served through ``dashboard_storage``) the constraints and feasibility, while Optuna's own
``trial.constraints`` stays as hwtune stores it."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest

optuna_dashboard = pytest.importorskip("optuna_dashboard")

from hwtune.exceptions import ConfigError  # noqa: E402
from hwtune.study._dashboard import (  # noqa: E402
    LEGACY_CONSTRAINTS_KEY,
    dashboard_attrs,
    dashboard_storage,
    mirror_trial,
)
from tests.report import _studies  # noqa: E402


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve(storage: Any) -> Iterator[str]:
    """optuna-dashboard's WSGI app on a real server on 127.0.0.1 (a free port); yields its base URL."""
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.loads(r.read())


def _study_detail(base: str, name: str) -> dict[str, Any]:
    studies = get(base, "/api/studies")["study_summaries"]
    sid = next(s["study_id"] for s in studies if s["study_name"] == name)
    return get(base, f"/api/studies/{sid}")


def _attrs(trial: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard") / "d.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _studies.run(path, name="single", n_trials=40)
    _studies.run(path, name="front", pareto=True, n_trials=8, constraints=["latency_ms <= 6"])
    return path


def test_plain_dashboard_shows_objective_names_hardware_numbers_and_over_budget_trials(db: Path):
    with serve(f"sqlite:///{db}") as base:
        single, front = _study_detail(base, "single"), _study_detail(base, "front")
    assert single["objective_names"] == ["error"]
    assert front["objective_names"] == ["error", "latency_ms"]
    sortable = {a["key"]: a["sortable"] for a in single["union_user_attrs"]}
    # numbers it sorts and plots (its plots take sortable user attributes as axes)
    for key in ("latency_ms", "error", "predicted latency_ms", "constraint: latency_ms <= 5", "constraint: error <= 0.3", "feasible", "over_budget"):
        assert sortable.get(key) is True, key
    by_status: dict[str, list[dict[str, Any]]] = {}
    for t in single["trials"]:
        by_status.setdefault(_attrs(t)["hwtune:status"], []).append(t)
    assert {"trained", "over_budget", "predicted_over_budget"} <= set(by_status)
    for t in by_status["over_budget"]:
        a = _attrs(t)
        assert t["state"] == "Pruned" and a["over_budget"] == "1.0" and a["feasible"] == "0.0"
        assert float(a["latency_ms"]) > 5 and float(a["constraint: latency_ms <= 5"]) > 0
    for t in by_status["predicted_over_budget"]:
        a = _attrs(t)
        assert t["state"] == "Pruned" and a["over_budget"] == "2.0" and "latency_ms" not in a and float(a["predicted latency_ms"]) > 5
    for t in by_status["trained"]:
        a = _attrs(t)
        assert a["over_budget"] == "0.0" and float(a["error"]) == pytest.approx(t["values"][0])
        assert a["feasible"] == ("1.0" if float(a["constraint: error <= 0.3"]) <= 0 and float(a["constraint: latency_ms <= 5"]) <= 0 else "0.0")
    # (optuna-dashboard 0.21 reads only Optuna 4's constraint list: served as it is, it lists none;
    # the constraint values are the numbers above, and dashboard_storage adds the list: next test)


def test_served_through_dashboard_storage_every_trial_shows_its_constraints(db: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    trials = {t.number: t for t in optuna.load_study(study_name="single", storage=storage).trials}
    with serve(dashboard_storage(f"sqlite:///{db}")) as base:
        detail = _study_detail(base, "single")
    assert detail["objective_names"] == ["error"]
    seen_infeasible = seen_feasible = False
    for t in detail["trials"]:
        named = trials[t["number"]].constraints
        assert t["constraints"] == [named[k] for k in sorted(named)]
        status = _attrs(t)["hwtune:status"]
        if status in ("over_budget", "predicted_over_budget"):
            assert t["constraints"] and max(t["constraints"]) > 0  # infeasible in its plots
            seen_infeasible = True
        if status == "trained" and _attrs(t)["feasible"] == "1.0":
            assert len(t["constraints"]) == 2 and all(c <= 0 for c in t["constraints"])
            seen_feasible = True
    assert seen_infeasible and seen_feasible


def test_optunas_own_api_is_unchanged(db: Path):
    with serve(dashboard_storage(f"sqlite:///{db}")) as base:
        _study_detail(base, "single")
    study = optuna.load_study(study_name="single", storage=f"sqlite:///{db}")
    for t in study.trials:
        assert LEGACY_CONSTRAINTS_KEY not in t.system_attrs  # nothing written for the dashboard
        assert all(not k.isdigit() for k in t.constraints)  # only hwtune's names, each once
    assert study.metric_names == ["error"]
    assert any(t.constraints for t in study.trials)


def test_a_fault_while_mirroring_never_fails_the_trial():
    class BrokenTrial:
        number = 3
        user_attrs = {"hwtune:status": "trained", "hwtune:metrics": {"error": 0.1}}
        constraints: dict[str, float] = {}

        def set_user_attr(self, key: str, value: Any) -> None:
            raise RuntimeError("storage is gone")

    mirror_trial(BrokenTrial())  # type: ignore[arg-type]  (no exception: the attributes are copies)


def test_dashboard_attrs_never_turn_a_missing_value_into_zero():
    attrs = dashboard_attrs({"hwtune:status": "failed", "hwtune:hardware": {"latency_ms": {"value": None, "source": "measured:timer"}}}, {})
    assert "latency_ms" not in attrs and "error" not in attrs
    assert attrs["feasible"] == 0.0 and attrs["over_budget"] == 0.0


def test_dashboard_storage_refuses_a_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        dashboard_storage(f"sqlite:///{tmp_path / 'none.db'}", field_name="--storage")
    assert e.value.field == "--storage" and not (tmp_path / "none.db").exists()


def test_a_study_stored_before_these_attributes_is_served_whole(tmp_path: Path):
    """A hwtune study written without the numbers or the objective names (an older hwtune): the view
    adds both to what the dashboard reads, and writes nothing."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(study_name="old", storage=url, directions=["minimize", "minimize"])
    study.set_user_attr("hwtune:config", {"space": {}, "objectives": ["minimize error", "minimize latency_ms"]})
    hw = {"latency_ms": {"value": 7.5, "unit": "ms", "source": "measured:timer"}}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"hwtune:status": "over_budget", "hwtune:hardware": hw},
                                              constraints={"latency_ms <= 5": 2.5}))
    with serve(dashboard_storage(url)) as base:
        detail = _study_detail(base, "old")
    assert detail["objective_names"] == ["error", "latency_ms"]
    (t,) = detail["trials"]
    a = _attrs(t)
    assert a["latency_ms"] == "7.5" and a["over_budget"] == "1.0" and a["constraint: latency_ms <= 5"] == "2.5"
    assert t["constraints"] == [2.5]
    again = optuna.load_study(study_name="old", storage=url)
    assert again.metric_names is None and "feasible" not in again.trials[0].user_attrs  # nothing written
