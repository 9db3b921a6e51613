from __future__ import annotations

import pytest

from hwtune.costmodel import NB201_DERIVED_KEYS, nb201_derived, nb201_derived_full, nb201_params, nb201_space
from hwtune.tabular import NB201_EDGES, load_nb201, parse_arch


def _p(arch: str) -> dict[str, str]:
    return dict(zip(NB201_EDGES, parse_arch(arch)))


def test_space_is_six_categorical_architecture_edges():
    s = nb201_space()
    assert list(s) == list(NB201_EDGES)
    assert s.hardware_names() == list(NB201_EDGES)


def test_flops_and_params_match_published_nas_bench_201_values():
    # NATS-Bench lists 220.11 M multiply-adds / 1.53 M params for all-3x3 and 7.78 M / 0.07 M for all-skip
    big = nb201_derived_full({e: "nor_conv_3x3" for e in NB201_EDGES})
    assert big["mflops"] / 2 == pytest.approx(220.11, abs=0.05)
    assert big["mparams"] == pytest.approx(1.53, abs=0.01)
    small = nb201_derived_full({e: "skip_connect" for e in NB201_EDGES})
    assert small["mflops"] / 2 == pytest.approx(7.78, abs=0.05)


def test_alive_edges_connected_and_depth():
    d = nb201_derived_full(_p("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"))
    assert d["connected"] == 1 and d["alive_skip"] == 1 and d["depth"] == 0
    d = nb201_derived_full(_p("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|none~2|"))
    assert d["connected"] == 0 and d["alive_conv3"] == 0 and d["n_conv3"] == 1
    d = nb201_derived_full(_p("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_1x1~2|"))
    assert d["connected"] == 1 and d["depth"] == 3
    # a dead branch: node 2 feeds nothing
    d = nb201_derived_full(_p("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|none~2|"))
    assert d["n_conv3"] == 1 and d["alive_conv3"] == 0 and d["alive_conv1"] == 1


def test_compact_derived_is_a_subset():
    p = _p("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_1x1~2|")
    d = nb201_derived(p)
    assert tuple(d) == NB201_DERIVED_KEYS
    full = nb201_derived_full(p)
    assert all(d[k] == full[k] for k in d)


def test_params_of_table_rows_round_trip():
    t = load_nb201()
    ps = nb201_params(t, [0, 123])
    assert t.row_of(tuple(ps[1][e] for e in NB201_EDGES)) == 123


def test_unknown_op_rejected():
    with pytest.raises(ValueError, match="unknown operation"):
        nb201_derived({e: "conv_7x7" for e in NB201_EDGES})
