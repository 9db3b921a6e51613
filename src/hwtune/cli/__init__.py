"""``hwtune`` command line."""

from hwtune.cli._app import app, main

__all__ = ["app", "main"]
