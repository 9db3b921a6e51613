"""Is a drift between a study's latency and its export's re-measurement the export's or the machine's?

For the given kept trials of a stored study, alternately (three times each): the study's own meter on
the PyTorch network (``Study.default_measure()``, as the study measured it) and the export's
re-measurement of the ONNX file (``hwtune.deploy._export.remeasure_latency``), both at the study's
stored reference speed. If both moved away from the stored value alike, the machine moved.

    .venv/bin/python benchmarks/export_retest_check.py --storage sqlite:///KEPT/study.db --trials 31,37,28,1,14

(``benchmarks/export_retest.py --keep KEPT`` keeps its study for this.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    import torch

    from hwtune.deploy._export import remeasure_latency
    from hwtune.hardware import export_onnx
    from hwtune.study import load_model, stored_study

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", required=True)
    ap.add_argument("--trials", required=True, help="comma-separated trial numbers of kept networks")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    st = stored_study(None, a.storage)
    recs = {r.number: r for r in st.records()}
    meter = st.default_measure()
    folder = Path(tempfile.mkdtemp(prefix="hwtune-retest-check-"))
    for n in (int(x) for x in a.trials.split(",")):
        r = recs[n]
        ref = r.hardware["latency_ms"].extra.get("at_reference_ms")
        model = load_model(st, n)
        path = export_onnx(model.eval(), torch.zeros(1, *st.input_shape), folder / f"trial_{n}.onnx")
        by_meter, by_export = [], []
        for _ in range(a.repeats):
            by_meter.append(meter(model, r.params)["latency_ms"].value)
            m, _ = remeasure_latency(path, st.input_shape, st.device, st.inference_batch_size, rel_ci=st.latency_rel_ci,
                                     max_time_s=st.latency_max_time_s, reference_ms=ref)
            by_export.append(m.value)
        final = r.final_hardware.get("latency_ms")
        print(f"trial {n}: stored {r.hardware['latency_ms'].value:.3f} ms, after training {final.value if final else float('nan'):.3f} ms; "
              f"the study's meter now {[round(x, 3) for x in by_meter]}, the export's path {[round(x, 3) for x in by_export]}", flush=True)


if __name__ == "__main__":
    main()
