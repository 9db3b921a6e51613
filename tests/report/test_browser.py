"""The HTML report in a real browser (issue 18): headless Chromium opens the written file, and the test
fails on any JavaScript error or console error, on any request that leaves the file (the report must
open offline), and on a figure that did not render (an empty plot).

Chromium is driven through its DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3
and 4, NUL-separated JSON): no WebSocket client, Playwright or Selenium needed. Skipped, with the
reason, when no Chromium is installed (``apt-get install chromium``; or set ``HWTUNE_CHROMIUM`` to a
Chrome/Chromium binary). Set ``HWTUNE_SCREENSHOT=path.png`` to keep a full-page screenshot.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

pytest.importorskip("plotly")

from hwtune.report import write_html  # noqa: E402
from hwtune.study import stored_study  # noqa: E402
from tests.report import _studies  # noqa: E402


def _chromium() -> str | None:
    for name in (os.environ.get("HWTUNE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and (path := shutil.which(name)):
            return path
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium or Chrome installed (apt-get install chromium, or set HWTUNE_CHROMIUM)")


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()

        def fds() -> None:  # in the child: fd 3 reads our commands, fd 4 writes its replies (kept: close_fds=False;
            # every other descriptor of ours is non-inheritable, PEP 446)
            a, b = os.dup(to_child_r), os.dup(from_child_w)  # above 4 first: a pipe may already sit on fd 3 or 4
            os.dup2(a, 3)  # dup2 makes 3 and 4 inheritable
            os.dup2(b, 4)

        args = [CHROMIUM, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run",
                "--disable-gpu", "--disable-extensions", "--no-default-browser-check", f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False, timeout: float = 60) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout
        while True:
            e = self._read(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path, width: int = 1400) -> None:
        import base64

        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        time.sleep(1.0)  # plotly's responsive figures redraw at the new size
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def errors(self) -> list[str]:
        """JavaScript exceptions, console errors and browser log errors seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


RENDERED = """
(() => {
  const out = [];
  document.querySelectorAll('[data-figure]').forEach(el => {
    const plot = el.querySelector('.js-plotly-plot');
    const svg = plot ? plot.querySelector('svg.main-svg') : null;
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = plot ? plot.querySelectorAll('.scatterlayer path.point, .scatterlayer path.js-line, .barlayer path').length : 0;
    out.push({key: el.getAttribute('data-figure'), missing: el.hasAttribute('data-missing'), plot: !!plot,
              width: box.width, height: box.height, marks: marks});
  });
  return out;
})()
"""


N_TRIALS = 20


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _studies.run(tmp / "b.db", name="browser", n_trials=N_TRIALS)
    out = tmp / "report.html"
    write_html(stored_study("browser", f"sqlite:///{tmp / 'b.db'}"), out)
    return out


def test_report_renders_every_figure_in_chromium_without_errors_or_requests(report_file: Path, tmp_path: Path):
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", {"url": report_file.as_uri()}, session=True)
        browser.wait_for("Page.loadEventFired")
        figures = browser.evaluate(RENDERED)
        # sorting the trial table by a column runs the page's own script
        order = browser.evaluate("""(() => { const th = document.querySelectorAll('#trial-table th')[0]; th.click(); th.click();
            return Array.from(document.querySelectorAll('#trial-table tbody tr')).map(r => +r.cells[0].getAttribute('data-v')); })()""")
        shot = os.environ.get("HWTUNE_SCREENSHOT")
        if shot:
            browser.screenshot(Path(shot))
        errors, requests = browser.errors(), browser.requests()
    finally:
        browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "about:", "blob:"))] == []  # opens offline
    assert [f["key"] for f in figures] == ["front_latency_ms", "progress", "feasibility", "calibration", "importance_error",
                                           "importance_latency_ms", "learning"]
    for f in figures:
        assert f["plot"] and not f["missing"], f
        assert f["width"] > 300 and f["height"] > 200 and f["marks"] > 0, f  # a drawn figure, not an empty frame
    assert order == sorted(order, reverse=True) and len(order) == N_TRIALS
