"""Storage faults in ``hwtune run`` (issue 11): exit 2, the field, the real cause and the fix; nothing written."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from typer.testing import CliRunner

from hwtune.cli import app


def test_corrupt_database_and_missing_driver_exit_2_with_cause_and_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "bad.db"
    db.write_bytes(os.urandom(4096))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    runner = CliRunner()
    r = runner.invoke(app, ["run", "--trials", "2", "-q", "--storage", f"sqlite:///{db}"])
    assert r.exit_code == 2, r.output
    assert "storage" in r.output and "not a database" in r.output and "Fix:" in r.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before

    with pytest.MonkeyPatch.context() as mp:  # as on a machine without the postgres extra
        mp.setitem(sys.modules, "psycopg", None)
        r = runner.invoke(app, ["run", "--trials", "2", "-q", "--storage", "postgresql://u@localhost/db"])
    assert r.exit_code == 2, r.output
    assert "not installed" in r.output and ".[postgres]" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]  # no hwtune.db created on the side
