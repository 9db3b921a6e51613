"""The families' cost features against the networks their builders make."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from hwtune.exceptions import ConfigError
from hwtune.train import FAMILIES, FamilyCostFeatures, cnn_cost_features, get_family, mlp_cost_features
from hwtune.train._cost_features import CNN_COST_FEATURES, MLP_COST_FEATURES

SRC = Path(__file__).resolve().parents[2] / "src"


def _random_cnn(rng: random.Random) -> dict:
    n = rng.randint(1, 4)
    p: dict = {"conv_layers": n, "dense_units": rng.randint(1, 300)}
    if rng.random() < 0.5:
        p["batch_norm"] = rng.random() < 0.5
    if rng.random() < 0.2:  # one value for every layer
        p["filters"], p["kernel"] = rng.randint(1, 40), rng.choice([1, 2, 3, 4, 5, 7])
    for i in range(n + rng.randint(0, 2)):  # sometimes params of layers the network does not have
        if rng.random() < 0.9:
            p[f"filters_{i}"] = rng.randint(1, 40)
        if rng.random() < 0.9:
            p[f"kernel_{i}"] = rng.choice([1, 2, 3, 4, 5, 7])
    if rng.random() < 0.3:
        p["dropout"] = 0.2  # a training param: in the network, not in its cost
    if rng.random() < 0.1:
        p = {k: v for k, v in p.items() if k in ("conv_layers", "batch_norm")}  # builder defaults
    return p


def _random_mlp(rng: random.Random) -> dict:
    n = rng.randint(1, 4)
    p: dict = {"hidden_layers": n, **{f"units_{i}": rng.randint(1, 300) for i in range(n) if rng.random() < 0.9}}
    if rng.random() < 0.2:
        p["units"] = rng.randint(1, 50)
    if rng.random() < 0.3:
        p["dropout"] = 0.1
    return p


_SHAPES = {"cnn": [(1, 8, 8), (3, 28, 28), (1, 28, 28), (2, 13, 9), (1, 3, 3), (3, 1, 17)], "mlp": [(64,), (1, 8, 8), (3, 5, 7)]}


def _cases(family: str, n: int, seed: int = 0):
    rng = random.Random(seed)
    make = _random_cnn if family == "cnn" else _random_mlp
    for _ in range(n):
        yield make(rng), rng.choice(_SHAPES[family]), rng.choice([2, 10, 37])


def _built_counts(model: nn.Module, shape: tuple[int, ...]) -> dict[str, float]:
    """Parameters, multiply-accumulates (PyTorch's FLOP counter / 2), the dense layer's input width
    and the elements written by the layers (forward hooks), of one sample in evaluation mode."""
    model.eval()
    act = [0]

    def hook(mod: nn.Module, inp: object, out: torch.Tensor) -> None:
        if not isinstance(mod, (nn.Flatten, nn.Dropout)):  # a view, and the identity when evaluating
            act[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros((1, *shape)))
    for h in handles:
        h.remove()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {
        "params": float(sum(p.numel() for p in model.parameters())),
        "macs": fc.get_total_flops() / 2,
        "flat_width": float(linears[0].in_features),
        "activations": float(act[0]),
    }


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("family", ["cnn", "mlp"])
def test_counts_equal_the_built_network(family):
    fam = get_family(family)
    for params, shape, classes in _cases(family, 120 if family == "cnn" else 60):
        got = fam.cost_features(params, shape, classes)
        want = _built_counts(fam.build(params, shape, classes), shape)
        where = f"{family} {params} input {shape} classes {classes}"
        assert got["params"] == want["params"], where  # exact
        assert got["macs"] == pytest.approx(want["macs"], rel=1e-9), where
        assert got["activations"] == want["activations"], where
        if family == "cnn":
            assert got["flat_width"] == want["flat_width"], where
            assert got["conv_layers"] == params["conv_layers"]
        else:
            assert got["hidden_layers"] == params["hidden_layers"]


def test_keys_are_fixed_and_few():
    assert tuple(cnn_cost_features({"conv_layers": 2}, (1, 8, 8), 10)) == CNN_COST_FEATURES
    assert tuple(mlp_cost_features({"hidden_layers": 2}, (64,), 10)) == MLP_COST_FEATURES
    assert all(fam.cost_features is not None for fam in FAMILIES.values())
    assert 4 <= len(CNN_COST_FEATURES) <= 8 and 4 <= len(MLP_COST_FEATURES) <= 8


def test_batch_norm_swaps_the_conv_bias_for_a_scale_and_shift():
    p = {"conv_layers": 2, "filters_0": 8, "filters_1": 16, "kernel_0": 3, "kernel_1": 3, "dense_units": 32}
    plain = cnn_cost_features(p, (1, 28, 28), 10)
    bn = cnn_cost_features({**p, "batch_norm": True}, (1, 28, 28), 10)
    assert bn["params"] - plain["params"] == 8 + 16  # +2f for the norm, -f for the bias, per layer
    assert bn["macs"] == plain["macs"] and bn["activations"] > plain["activations"]
    assert plain["flat_width"] == 16 * 7 * 7


def test_family_cost_features_is_a_picklable_callable():
    f = FamilyCostFeatures("cnn", [1, 28, 28], 10)  # type: ignore[arg-type]
    assert f.input_shape == (1, 28, 28) and f.__name__ == "cnn_cost_features"
    g = pickle.loads(pickle.dumps(f))
    assert g == f and hash(g) == hash(f)
    p = {"conv_layers": 1, "filters_0": 8, "kernel_0": 5, "dense_units": 16}
    assert g(p) == f(p) == cnn_cost_features(p, (1, 28, 28), 10)
    assert FamilyCostFeatures("mlp", (64,), 10)({"hidden_layers": 1, "units_0": 5})["params"] == 64 * 5 + 5 + 5 * 10 + 10


def test_family_cost_features_errors_name_the_field():
    with pytest.raises(ConfigError) as e:
        FamilyCostFeatures("resnet", (1, 8, 8), 10)
    assert e.value.field == "model.family"
    with pytest.raises(ConfigError) as e:
        FamilyCostFeatures("cnn", (64,), 10)  # a cnn needs images: said when built, not in the sampler
    assert "image input" in str(e.value)


def test_cost_features_are_pure_python_and_cheap():
    import ast

    import hwtune.train._cost_features as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "math", "typing", "hwtune.exceptions"}, imported
    code = (
        "import sys; sys.modules['torch'] = None\n"  # importing torch now fails
        "from hwtune.train import FamilyCostFeatures\n"
        "f = FamilyCostFeatures('cnn', (1, 8, 8), 10); print(f({'conv_layers': 3})['params'])\n"
        "print(FamilyCostFeatures('mlp', (64,), 10)({})['params'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert out.returncode == 0, out.stderr
    f = FamilyCostFeatures("cnn", (1, 28, 28), 10)
    p = {"conv_layers": 3, "filters_0": 8, "filters_1": 16, "filters_2": 32, "kernel_0": 3, "kernel_1": 5, "kernel_2": 5, "dense_units": 100}
    t = time.perf_counter()
    for _ in range(2000):
        f(p)
    assert (time.perf_counter() - t) / 2000 < 200e-6  # a few microseconds; generous for a busy machine
