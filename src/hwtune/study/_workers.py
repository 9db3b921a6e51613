"""Extra worker processes of one ``Study.optimize``: each runs the same study with its own sampler
seed, dies with its parent (even a SIGKILLed one) and abandons (re-queues) its trial when stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from hwtune.study._objective import BuildModel, Measure, TrainAndEvaluate
    from hwtune.study._study import Study

__all__ = ["stop_workers", "worker_main"]


def worker_main(
    study: Study,
    worker: int,
    build_model: BuildModel,
    train_and_evaluate: TrainAndEvaluate,
    measure: Measure,
    n_trials: int | None,
    n_trained: int | None,
    timeout: float | None,
    reserve_lock: Any = None,
    parent_pid: int | None = None,
) -> None:
    """Entry point of an extra worker process (spawned): same study, its own sampler seed; it dies with
    its parent, abandoning (re-queueing) its trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def on_sigint(signum: int, frame: Any) -> None:  # a terminal's Ctrl-C and the parent's stop alike: once
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # SystemExit: the trial is abandoned
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    try:
        study._run(worker, build_model, train_and_evaluate, measure, n_trials, n_trained, timeout, reserve_lock=reserve_lock)
    except (KeyboardInterrupt, SystemExit):  # its trial is already abandoned and re-queued
        os._exit(130)


def _die_with_parent(parent_pid: int, poll_s: float = 0.5, grace_s: float = 3.0) -> None:
    """End this worker when its parent ends, even by SIGKILL: Linux's parent-death signal (SIGTERM,
    handled as ``SystemExit``: the trial is abandoned and re-queued), and a thread that polls the
    parent elsewhere or if the signal was missed, exiting hard if the worker has not ended ``grace_s`` later."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        with contextlib.suppress(Exception):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(143)

    threading.Thread(target=watch, name="hwtune-parent-watch", daemon=True).start()


def stop_workers(procs: Sequence[Any], grace_s: float = 20.0) -> None:
    """Interrupt live workers (each abandons its trial, re-queued), then make sure they are gone."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGINT)
    end = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, end - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
