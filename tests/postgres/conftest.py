"""A real PostgreSQL server for the shared-storage tests (issue 16): ``HWTUNE_TEST_POSTGRES_URL``
names a server and a role allowed to create databases (``.ci/run`` starts one); each test gets a
fresh database, dropped afterwards. Without the variable (or the driver) the tests skip, saying why."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ENV = "HWTUNE_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/postgres" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(ENV)
    if not base:
        pytest.skip(f"{ENV} is not set: no PostgreSQL server to test against (.ci/run starts one)")
    psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg 3) is not installed")
    from sqlalchemy.engine import make_url

    u = make_url(base)
    name = f"hwtune_{uuid.uuid4().hex[:12]}"
    admin = dict(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password, dbname=u.database or "postgres")
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield u.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
