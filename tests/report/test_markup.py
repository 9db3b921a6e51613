"""User values are never read as Rich markup (issue 11): study names, failure messages, error texts."""

from __future__ import annotations

from rich.console import Console

from hwtune import Study
from hwtune.cli._app import ECHO_LIMIT, _error_text
from hwtune.exceptions import ConfigError
from hwtune.report import print_summary
from tests.study import _doubles as d


def _failing_train(model, params, ctx):
    if ctx.trial_number == 0:
        raise ValueError("bad option [red]x[/red]; choices: [false, true] [/]")
    return d.train(model, params, ctx)


def _printed(summary) -> str:
    console = Console(record=True, width=300, color_system=None)
    print_summary(summary, console)
    return console.export_text()


def test_summary_prints_markup_in_study_names_and_failures_literally():
    for name in ("exp[/]1", "exp[red]1", "trailing\\"):
        s = Study(name, d.SPACE, sampler="random", cost_model=None, constraints=["latency_ms <= 100"])
        summary = s.optimize(d.build, _failing_train, measure=d.measure, n_trials=2)
        text = _printed(summary)
        assert f"Study {name}:" in text
        assert "bad option [red]x[/red]; choices: [false, true] [/]" in text


def test_cli_error_text_is_literal_and_capped():
    e = ConfigError("space.x[/]", "got " + "[red]" + "a" * 100_000, "use [false, true].")
    console = Console(record=True, width=300, color_system=None)
    console.print(_error_text(e), soft_wrap=True)
    text = console.export_text()
    assert "space.x[/]: got [red]aaa" in text and "Fix: use [false, true]." in text
    assert len(text) < ECHO_LIMIT + 400 and "more characters" in text
