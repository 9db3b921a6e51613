"""``hwtune show``: a stored study's summary without running or writing anything (issue 13)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from hwtune.cli import app
from hwtune.vocabulary import MODEL_ATTR
from tests._tiny_digits import tiny_digits_spec


def _listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real study of two trained trials on the digits (hwtune run), its models kept beside the file."""
    tmp = tmp_path_factory.mktemp("show")
    spec = tiny_digits_spec(tmp / "show.db", "shown", filters_high=8, constraints=["latency_ms <= 1000"], keep_models="all",
                            trainer={"amp": False, "channels_last": False})
    path = tmp / "show.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["run", str(path), "-q"])
    assert r.exit_code == 0, r.output
    return tmp


def test_show_prints_counts_best_network_sources_and_where_the_models_are_and_writes_nothing(stored, monkeypatch):
    monkeypatch.chdir(stored)
    before = _listing(stored)
    wide = {"COLUMNS": "300"}  # table cells are not wrapped
    r = CliRunner().invoke(app, ["show", "--storage", f"sqlite:///{stored / 'show.db'}"], env=wide)  # the only study: no name needed
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Study shown: 2 trained" in out and "latency_ms <= 1000" in out
    assert "Best feasible network (trial" in out and "measured:training" in out and "objective: minimize error" in out
    folder = stored / "show.db.artifacts"
    ids = [t.user_attrs[MODEL_ATTR]["artifact_id"] for t in optuna.load_study(study_name="shown", storage=f"sqlite:///{stored / 'show.db'}").trials]
    assert "Trained weights (keep_models: all): 2 kept in" in out and f"kept in {folder}" in out
    assert all(str(folder / i) in out for i in ids) and re.search(r"trained weights +│ " + re.escape(str(folder)), out)
    assert "hwtune.load_model('shown'" in out
    assert _listing(stored) == before  # read only: the database and the artifacts are unchanged


def test_show_by_name_and_the_default_storage(stored, monkeypatch):
    monkeypatch.chdir(stored)
    (stored / "show.db").rename(stored / "hwtune.db")
    (stored / "show.db.artifacts").rename(stored / "hwtune.db.artifacts")
    try:
        r = CliRunner().invoke(app, ["show", "shown"])  # default storage: sqlite:///hwtune.db, as hwtune run
        assert r.exit_code == 0, r.output
        assert "Study shown: 2 trained" in r.output and "2 kept" in r.output
    finally:
        (stored / "hwtune.db").rename(stored / "show.db")
        (stored / "hwtune.db.artifacts").rename(stored / "show.db.artifacts")


@pytest.mark.parametrize("args, field, words", [
    (["show", "--storage", "sqlite:///{d}/missing.db"], "--storage", "no SQLite file"),
    (["show"], "--storage", "hwtune.db"),  # the default storage, absent here
    (["show", "--storage", "sqlite:///{d}/junk.db"], "--storage", "not a readable SQLite database"),
    (["show", "--storage", "sqlite:///{d}/empty.db"], "--storage", "not an Optuna storage"),
    (["show", "--storage", "sqlite:///:memory:"], "--storage", "in-memory"),
    (["show", "--storage", "not a url"], "--storage", "not a SQLAlchemy URL"),
])
def test_a_missing_or_bad_storage_exits_2_naming_storage_and_writes_nothing(tmp_path, monkeypatch, args, field, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    (tmp_path / "empty.db").write_bytes(b"")
    before = _listing(tmp_path)
    r = CliRunner().invoke(app, [a.replace("{d}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, r.output
    assert f"error {field}:" in r.output and words in r.output and "Fix:" in r.output
    assert _listing(tmp_path) == before  # no database file created, nothing changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "junk.db"]


def test_a_bad_or_ambiguous_study_exits_2_naming_study_and_listing_the_names(stored, tmp_path):
    url = f"sqlite:///{stored / 'show.db'}"
    before = _listing(stored)
    r = CliRunner().invoke(app, ["show", "nope", "--storage", url])
    assert r.exit_code == 2 and "error STUDY:" in r.output and "no study 'nope'" in r.output and "shown" in r.output
    assert _listing(stored) == before

    two = f"sqlite:///{tmp_path / 'two.db'}"
    optuna.create_study(study_name="a", storage=two)
    optuna.create_study(study_name="b", storage=two)
    before = _listing(tmp_path)
    r = CliRunner().invoke(app, ["show", "--storage", two])
    assert r.exit_code == 2 and "error STUDY:" in r.output and "2 studies: a, b" in r.output
    r = CliRunner().invoke(app, ["show", "a", "--storage", two])  # a plain Optuna study
    assert r.exit_code == 2 and "error STUDY:" in r.output and "not made by hwtune" in r.output
    assert _listing(tmp_path) == before
