"""Benchmark (issue 17): the same networks measured locally and through a measurement agent on loopback.

For ``--n`` random architectures of the default study's space (``cnn`` on the 8x8 digits, batch 64,
``cpu:1``, ONNX Runtime):

1. each network is measured three times, in rotating order: twice by the study's local default meter
   (``Study.default_measure()`` at this machine's reference speed, as a local study stores it) and once through
   a real agent (uvicorn + the app + its measuring process, ``hwtune.agent.BackgroundAgent``) with the
   study's remote meter (``hwtune.hardware.remote_meter``, at the agent's own reference speed): rank
   correlation (Spearman) and median ratio of the latencies, local vs remote and local vs local (the
   machine's own test-retest), at the reference speeds and on the wall clock;
2. the overhead of a remote measurement: the client's round trip minus the agent's measuring time
   (upload, checks, queue, HTTP), against the measuring time; the export's seconds (paid locally too);
3. the agent's measuring process: seconds to spawn it (import torch and ONNX Runtime, warm up), paid
   once at start and after a kill;
4. two studies of the same seed (``random`` sampler, no cost model, an absolute latency limit at the
   median of part 1, one epoch, training on one thread in both): one measured locally, one through the
   agent; the same proposals, and whether each was accepted (trained) or rejected (over budget) alike.

    python benchmarks/remote_agent.py --n 30 --json benchmarks/results/remote_agent.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _studies(agent: Any, token_file: Path, limit: float, trials: int, folder: Path) -> dict[str, Any]:
    from hwtune.study import default_study_file, parse_study_file, study_from_file

    base = default_study_file().model_dump()
    out: dict[str, Any] = {}
    for where, device in (("local", "cpu:1"), ("remote", f"{agent.spec}?token_file={token_file}&threads=1")):
        spec = {**base, "name": f"bench-{where}", "storage": f"sqlite:///{folder / (where + '.db')}", "device": device, "sampler": "random",
                "cost_model": "none", "constraints": [f"latency_ms <= {limit:.6g}"], "budget": {"trials": trials},
                "space": {**base["space"], "epochs": 1}, "keep_models": "none"}
        t0 = time.perf_counter()
        study, build, train = study_from_file(parse_study_file(spec))
        study.optimize(build, train, n_trials=trials)
        recs = study.records()
        out[where] = {"seconds": round(time.perf_counter() - t0, 1),
                      "trials": [{"params": r.params, "status": r.status,
                                  "latency_ms": (r.hardware.get("latency_ms").value if r.hardware.get("latency_ms") else None),
                                  "source": (r.hardware.get("latency_ms").source if r.hardware.get("latency_ms") else None)} for r in recs]}
    loc, rem = out["local"]["trials"], out["remote"]["trials"]
    same_params = all(a["params"] == b["params"] for a, b in zip(loc, rem)) and len(loc) == len(rem)
    agree = [a["status"] == b["status"] for a, b in zip(loc, rem)]
    out["summary"] = {"same_proposals": same_params, "same_decision": int(sum(agree)), "trials": len(agree),
                      "disagreements": [{"trial": i, "local": (loc[i]["status"], loc[i]["latency_ms"]), "remote": (rem[i]["status"], rem[i]["latency_ms"])}
                                        for i, ok in enumerate(agree) if not ok]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="random architectures of the default study's space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--study-trials", type=int, default=12, help="trials of each of the two studies (0: skip part 4)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from hwtune.agent import AgentSettings, BackgroundAgent, write_token
    from hwtune.hardware import RemoteDevice, remote_meter
    from hwtune.study import default_study_file, study_from_file
    from hwtune.study._calibrate import _draw_architectures

    torch.manual_seed(args.seed)
    load0, t_start = os.getloadavg(), time.time()
    study, build, _ = study_from_file(default_study_file(), storage="sqlite:///:memory:")
    from dataclasses import replace

    from hwtune.hardware import measure_reference_speed

    local_ref = measure_reference_speed(study.device)
    local = replace(study.default_measure(), reference_ms=float(local_ref["ms"]))  # as a local study measures: at its reference speed
    shape = (study.inference_batch_size, *study.input_shape)
    archs = _draw_architectures(study.space, args.n, np.random.default_rng(args.seed))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hwtune-bench-agent-") as tmp:
        folder = Path(tmp)
        token_file = write_token(folder / "agent.token")
        t0 = time.perf_counter()
        with BackgroundAgent(AgentSettings(device="cpu:1", port=0, name="loopback"), token_file.read_text().strip()) as agent:
            agent_start_s = time.perf_counter() - t0
            worker = agent.app.state.worker
            spawn_s = worker.last_start_s
            dev = RemoteDevice("127.0.0.1", agent.port, token_file=str(token_file))
            remote = remote_meter(dev, shape, study.latency_rel_ci, study.latency_max_time_s, local.metrics, "onnxruntime")
            order = ["local", "remote", "local2"]
            for i, params in enumerate(archs):
                net = build(params)
                row: dict[str, Any] = {"params": study.space.hardware_params(params)}
                for which in order[i % 3:] + order[: i % 3]:  # rotate, so that a drift favours no side
                    t1 = time.perf_counter()
                    r = (remote if which == "remote" else local)(net, params)
                    lat = r["latency_ms"]
                    row[which] = {"ms": lat.value, "wall_ms": lat.extra.get("wall_ms"), "ci": [lat.ci_low, lat.ci_high], "source": lat.source,
                                  "agent_source": lat.extra.get("agent_source"), "seconds": time.perf_counter() - t1,
                                  **{k: lat.extra.get(k) for k in ("export_s", "queue_wait_s", "agent_measure_s", "round_trip_s", "model_bytes", "agent_reference_ms") if k in lat.extra}}
                rows.append(row)
                print(f"{i:2d} local {row['local']['ms']:.4g} ms  remote {row['remote']['ms']:.4g} ms  local2 {row['local2']['ms']:.4g} ms", flush=True)
            # the cost of a restart of the measuring process (after a time-out or a crash)
            worker.kill()
            t2 = time.perf_counter()
            worker.ensure_started()
            restart_s = time.perf_counter() - t2
            median_local = float(np.median([r["local"]["ms"] for r in rows]))
            studies = _studies(agent, token_file, median_local, args.study_trials, folder) if args.study_trials else None
    a = [r["local"]["ms"] for r in rows]
    b = [r["remote"]["ms"] for r in rows]
    c = [r["local2"]["ms"] for r in rows]
    ratio = np.array(b) / np.array(a)
    retest = np.array(c) / np.array(a)
    overhead = np.array([r["remote"]["round_trip_s"] - r["remote"]["agent_measure_s"] for r in rows])
    measure = np.array([r["remote"]["agent_measure_s"] for r in rows])
    wa, wb, wc = ([r[k]["wall_ms"] for r in rows] for k in ("local", "remote", "local2"))
    summary = {
        "n": len(rows),
        "reference_ms_local": float(local_ref["ms"]), "reference_ms_agent": rows[0]["remote"].get("agent_reference_ms"),
        "wall_spearman_local_remote": _spearman(wa, wb), "wall_spearman_local_local": _spearman(wa, wc),
        "wall_median_ratio_remote_over_local": float(np.median(np.array(wb) / np.array(wa))),
        "spearman_local_remote": _spearman(a, b),
        "spearman_local_local": _spearman(a, c),
        "median_ratio_remote_over_local": float(np.median(ratio)),
        "ratio_p10_p90": [float(np.percentile(ratio, 10)), float(np.percentile(ratio, 90))],
        "median_ratio_local2_over_local": float(np.median(retest)),
        "retest_p10_p90": [float(np.percentile(retest, 10)), float(np.percentile(retest, 90))],
        "overhead_s_median": float(np.median(overhead)), "overhead_s_max": float(np.max(overhead)),
        "agent_measure_s_median": float(np.median(measure)),
        "overhead_share_median": float(np.median(overhead / measure)),
        "export_s_median_remote": float(np.median([r["remote"]["export_s"] for r in rows])),
        "seconds_per_measurement_local_median": float(np.median([r["local"]["seconds"] for r in rows])),
        "seconds_per_measurement_remote_median": float(np.median([r["remote"]["seconds"] for r in rows])),
        "model_bytes_median": float(np.median([r["remote"]["model_bytes"] for r in rows])),
        "agent_start_s": agent_start_s, "worker_spawn_s": spawn_s, "worker_restart_s": restart_s,
        "median_local_ms": median_local,
        "load_start": load0, "load_end": os.getloadavg(), "seconds": time.time() - t_start,
        "torch": torch.__version__,
    }
    if studies:
        summary["studies"] = {**studies["summary"], "seconds_local": studies["local"]["seconds"], "seconds_remote": studies["remote"]["seconds"]}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows, "studies": studies}, indent=1, default=str))


if __name__ == "__main__":
    main()
