"""The nb201 family in study files (issue 11, section 4): params, validation, builder, cost features."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace
from hwtune.tabular._nb201 import NB201_EDGES, NB201_OPS
from hwtune.train import get_family, nb201_cost_features

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cifar10_nb201.yaml"


@pytest.mark.parametrize("ops, channels, cells", [(("nor_conv_3x3",) * 6, 4, 1), (NB201_OPS + ("nor_conv_1x1",), 8, 2), (("none",) * 6, 16, 1)])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
def test_cost_features_count_the_built_network(ops, channels, cells, shape):
    params = {**dict(zip(NB201_EDGES, ops)), "channels": channels, "cells": cells}
    model = get_family("nb201").build(params, shape, 10)
    assert nb201_cost_features(params, shape, 10)["params"] == sum(p.numel() for p in model.parameters())


def test_edges_are_architecture_params_and_validated():
    fam = get_family("nb201")
    names = [*NB201_EDGES, "channels", "cells", "lr"]
    assert fam.default_roles(names) == {n: "architecture" for n in names[:-1]}
    ok = SearchSpace.from_dict({e: {"type": "categorical", "choices": list(NB201_OPS)} for e in NB201_EDGES} | {"channels": 4, "cells": 1})
    fam.validate_space(ok, (3, 16, 16), 10)
    bad = SearchSpace.from_dict({"edge_1_0": {"type": "categorical", "choices": ["nor_conv_5x5"]}})
    with pytest.raises(ConfigError, match="nor_conv_3x3") as e:
        fam.validate_space(bad, (3, 16, 16), 10)
    assert e.value.field == "space.edge_1_0"
    with pytest.raises(ConfigError, match="channels"):
        fam.validate_space(SearchSpace.from_dict({"channels": 0}), (3, 16, 16), 10)


def test_a_study_file_searches_the_cell(tmp_path):
    from hwtune.study import load_study_file, study_from_file

    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["data"] = {"name": "digits"}
    spec["space"].update(epochs=1, batch_size=32)
    spec["constraints"] = ["latency_ms <= 1000"]
    spec["latency"] = {"max_time_s": 0.3}
    p = tmp_path / "nb.yaml"
    p.write_text(yaml.safe_dump(spec))
    study, build, train = study_from_file(load_study_file(p), storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert sorted(study.space.hardware_names()) == sorted([*NB201_EDGES, "channels", "cells"])
    # hwtune's sampler starts from the published errors of the same cells (the prior of issue 19)
    assert study.error_prior is not None and study.error_prior.source.startswith("published:NATS-Bench")
    assert study.sampler_spec != "hwtune" or study._sampler().state.error_prior is study.error_prior
    summary = study.optimize(build, train, n_trials=2)
    assert summary.counts.get("trained", 0) == 2
    assert study.cost_features is not None and set(study.cost_features(summary.records[0].params)) >= {"params", "macs"}


def test_example_study_file_is_valid():
    from hwtune.study import load_study_file

    spec = load_study_file(EXAMPLE)
    assert spec.model.family == "nb201" and spec.data.name == "imagefolder"
