"""Built-in model families: a name, the params it builds from, and a builder.

A family says which of its params are *architecture* params (they alone decide hardware cost),
checks a search space against what it can build, and builds untrained ``torch.nn.Module`` s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from hwtune.exceptions import ConfigError
from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam, SearchSpace
from hwtune.tabular._nb201 import NB201_EDGES, NB201_OPS
from hwtune.train._cost_features import cnn_cost_features, mlp_cost_features, nb201_cost_features
from hwtune.train._training import TRAINING_SPECS, validate_training_space

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["ModelFamily", "get_family", "FAMILIES", "TRAINING_PARAMS", "FamilyCostFeatures"]

MAX_LAYERS = 8

TRAINING_PARAMS: dict[str, tuple[float, float]] = {
    # name: (lowest allowed, highest allowed), for the numeric params; TRAINING_SPECS has them all
    name: (spec.low, spec.high) for name, spec in TRAINING_SPECS.items() if spec.kind in ("int", "float")
}
"""Numeric params the built-in trainer understands, with their valid ranges (see ``TRAINING_SPECS``
for every param, switches and choices included, and which optimizer / schedule each belongs to)."""


@dataclass(frozen=True)
class ModelFamily:
    """A family of networks built from params.

    Attributes:
        name: registry name used in study files (``family: cnn``).
        arch_params: architecture param name -> (lowest, highest) valid value; names ending in
            ``_<i>`` are per-layer (``filters_0``, ``filters_1``...).
        builder: ``(params, input_shape, num_classes) -> nn.Module``.
        description: one line for help texts.
        cost_features: ``(params, input_shape, num_classes) -> {feature: value}``: what the hardware
            cost depends on, computed from the params without building the network (parameter count,
            multiply-accumulates...): the cost model's derived features. Pure Python and cheap, since
            the sampler calls it for every candidate it screens; ``None`` when the family has none.
    """

    name: str
    arch_params: Mapping[str, tuple[float, float]]
    builder: Callable[[Mapping[str, Any], tuple[int, ...], int], "nn.Module"]
    description: str
    per_layer: tuple[str, ...] = field(default_factory=tuple)
    switches: tuple[str, ...] = field(default_factory=tuple)
    """Architecture params that are true/false (e.g. ``batch_norm``); their ``arch_params`` range is ignored."""
    cost_features: Callable[[Mapping[str, Any], tuple[int, ...], int], dict[str, float]] | None = None
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """Architecture params that take one of a few values (e.g. an NB201 edge's operation); their
    ``arch_params`` range is ignored."""

    def knows(self, param: str) -> bool:
        """Whether ``param`` is one of this family's architecture params."""
        return self._arch_key(param) is not None

    def _arch_key(self, param: str) -> str | None:
        if param in self.arch_params:
            return param
        base, _, idx = param.rpartition("_")
        if base in self.per_layer and idx.isdigit() and int(idx) < MAX_LAYERS:
            return base
        return None

    def default_roles(self, names: list[str]) -> dict[str, str]:
        return {n: "architecture" for n in names if self.knows(n)}

    def build(self, params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> "nn.Module":
        """Build an untrained network."""
        return self.builder(params, input_shape, num_classes)

    def validate_space(
        self, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, field: str = "space", checked_elsewhere: Collection[str] = ()
    ) -> None:
        """Check names and ranges against what the family and trainer accept, then build the extremes.
        ``checked_elsewhere``: names another part validates (the compression params)."""
        for name, p in space.items():
            if name in checked_elsewhere:
                continue
            key = self._arch_key(name)
            if key is not None:
                lo, hi = self.arch_params[key]
            elif name in TRAINING_SPECS:
                continue  # checked by validate_training_space below
            else:
                known = sorted(set(self.arch_params) | {f"{b}_<i>" for b in self.per_layer} | set(TRAINING_SPECS))
                raise ConfigError(f"{field}.{name}", f"model family {self.name!r} and the trainer have no param {name!r}.", f"use one of: {', '.join(known)}.")
            values: list[Any]
            if isinstance(p, (IntParam, FloatParam)):
                values = [p.low, p.high]
            elif isinstance(p, CategoricalParam):
                values = list(p.choices)
            else:
                values = [p.value] if isinstance(p, FixedParam) else []
            if key in self.choices:
                if isinstance(p, (IntParam, FloatParam)) or not values or any(v not in self.choices[key] or isinstance(v, bool) for v in values):
                    opts = ", ".join(map(str, self.choices[key]))
                    raise ConfigError(f"{field}.{name}", f"{name} is one of {opts}; got {values!r}.", f"write {name}: <one of them>, or {{type: categorical, choices: <some of them>}}.")
                continue
            if key in self.switches:
                if isinstance(p, (IntParam, FloatParam)) or not all(isinstance(v, bool) for v in values):
                    raise ConfigError(f"{field}.{name}", f"{name} is true or false, got {values!r}.", f"write {name}: true / false, or {{type: categorical, choices: [false, true]}}.")
                continue
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
                    raise ConfigError(f"{field}.{name}", f"value {v!r} is outside what {self.name!r} accepts ({lo:g} to {hi:g}).", f"keep {name} within [{lo:g}, {hi:g}].")
        validate_training_space(space, field)
        for point in space.extreme_points():
            try:
                import torch

                model = self.build(point, input_shape, num_classes)
                with torch.no_grad():
                    model.eval()(torch.zeros((1, *input_shape)))
            except ConfigError:
                raise
            except Exception as e:  # the family cannot build this corner of the space
                arch = {k: v for k, v in point.items() if self.knows(k)}
                raise ConfigError(field, f"model family {self.name!r} cannot build {arch} for input {input_shape}: {e}.", "narrow the architecture ranges.") from None


_PRUNED_WIDTHS: dict[str, tuple[tuple[str, str, int, int], ...]] = {
    # family -> (width base name, layer-count name, default width, default layers); the output layer is never pruned
    "cnn": (("filters", "conv_layers", 16, 1), ("dense_units", "", 64, 1)),
    "mlp": (("units", "hidden_layers", 128, 1),),
}


def pruned_widths(family: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``params`` with the widths a ``prune_ratio`` leaves (``hwtune.compress.prune_channels`` keeps
    ``max(1, int(width * (1 - ratio)))`` channels of every layer but the output), so that cost features
    describe the network that is measured. Unchanged without a ratio, and for ``nb201`` (coupled cells)."""
    r = params.get("prune_ratio")
    if family not in _PRUNED_WIDTHS or isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
        return params
    out = dict(params)
    for base, count, width, layers in _PRUNED_WIDTHS[family]:
        n = int(params.get(count, layers)) if count else 1
        for i in range(n):
            w = int(_layer_value(params, base, i, width)) if count else int(params.get(base, width))
            out[f"{base}_{i}" if count else base] = max(1, int(w * (1 - float(r))))  # as torch-pruning computes it, in floating point
    return out


def _layer_value(params: Mapping[str, Any], base: str, i: int, default: Any) -> Any:
    # keep in step with _cost_features.py, which mirrors these builders without building anything
    return params.get(f"{base}_{i}", params.get(base, default))


def _build_cnn(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> "nn.Module":
    """Conv(k, same padding) [-> BatchNorm when ``batch_norm``] -> ReLU -> 2x2 max-pool (while the map
    is at least 2 wide), repeated; then a dense ReLU layer [-> dropout] and the classifier. The
    HyperPower paper's CNN family, sized for small images."""
    import torch.nn as nn

    if len(input_shape) != 3:
        raise ConfigError("model.family", f"cnn needs image input (C, H, W), got shape {input_shape}.", "use family: mlp for flat features.")
    c, h, w = input_shape
    bn = bool(params.get("batch_norm", False))
    layers: list[nn.Module] = []
    for i in range(int(params.get("conv_layers", 1))):
        filters = int(_layer_value(params, "filters", i, 16))
        kernel = int(_layer_value(params, "kernel", i, 3))
        if bn:  # Conv (no bias: the norm's shift replaces it) -> BatchNorm -> ReLU
            layers += [nn.Conv2d(c, filters, kernel, padding="same", bias=False), nn.BatchNorm2d(filters), nn.ReLU()]
        else:
            layers += [nn.Conv2d(c, filters, kernel, padding="same"), nn.ReLU()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = filters
    dense = int(params.get("dense_units", 64))
    layers += [nn.Flatten(), nn.Linear(c * h * w, dense), nn.ReLU()]
    if float(params.get("dropout", 0.0)) > 0:
        layers.append(nn.Dropout(float(params["dropout"])))
    layers.append(nn.Linear(dense, num_classes))
    return nn.Sequential(*layers)


def _build_mlp(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> "nn.Module":
    """Flatten -> (Linear -> ReLU) x hidden_layers -> classifier."""
    import torch.nn as nn

    n_in = math.prod(input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(int(params.get("hidden_layers", 1))):
        units = int(_layer_value(params, "units", i, 128))
        layers += [nn.Linear(n_in, units), nn.ReLU()]
        if float(params.get("dropout", 0.0)) > 0:
            layers.append(nn.Dropout(float(params["dropout"])))
        n_in = units
    layers.append(nn.Linear(n_in, num_classes))
    return nn.Sequential(*layers)


def _build_nb201(params: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> "nn.Module":
    """The NAS-Bench-201 network (``_nb201.py``) of the cell ``edge_1_0 ... edge_3_2`` (or an
    architecture string ``arch``), ``channels`` in the first stage (16; alias ``C``) and ``cells``
    per stage (5; alias ``N``)."""
    from hwtune.train._cost_features import nb201_cell
    from hwtune.train._nb201 import build_nb201

    if len(input_shape) != 3 or min(input_shape[1:]) < 4:
        raise ConfigError("model.family", f"nb201 needs image input (C, H, W) at least 4x4, got shape {tuple(input_shape)}.", "use an image data set (e.g. imagefolder, mnist), or family: mlp for flat features.")
    ops, channels, cells = nb201_cell(params)
    return build_nb201(ops, C=channels, N=cells, num_classes=num_classes, in_channels=int(input_shape[0]))


FAMILIES: dict[str, ModelFamily] = {
    "cnn": ModelFamily(
        "cnn",
        {"conv_layers": (1, MAX_LAYERS), "filters": (1, 4096), "kernel": (1, 31), "dense_units": (1, 1 << 16), "batch_norm": (0, 1)},
        _build_cnn,
        "convolution layers with max-pooling, one dense layer (HyperPower's CNN family)",
        per_layer=("filters", "kernel"),
        switches=("batch_norm",),
        cost_features=cnn_cost_features,
    ),
    "mlp": ModelFamily(
        "mlp",
        {"hidden_layers": (1, MAX_LAYERS), "units": (1, 1 << 16)},
        _build_mlp,
        "fully connected layers",
        per_layer=("units",),
        cost_features=mlp_cost_features,
    ),
    "nb201": ModelFamily(
        "nb201",
        {**{e: (0, 0) for e in NB201_EDGES}, "channels": (1, 512), "cells": (1, 32)},  # edges: see choices
        _build_nb201,
        "NAS-Bench-201 cell network: six edges of a cell, each one of five operations (32x32 images)",
        cost_features=nb201_cost_features,
        choices={e: NB201_OPS for e in NB201_EDGES},
    ),
}


def get_family(name: str, field: str = "model.family") -> ModelFamily:
    """Look a family up by name, with an error listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(field, f"unknown model family {name!r}.", f"use one of {', '.join(sorted(FAMILIES))}.") from None


@dataclass(frozen=True)
class FamilyCostFeatures:
    """The cost features of a built-in family for one data set: ``params -> {feature: value}``.

    The cost model's derived features (``Featurizer(space, derived=FamilyCostFeatures(...))``,
    ``Study(cost_features=...)``). Picklable, for worker processes: only the three fields travel.

    Attributes:
        family: a name of :data:`hwtune.train.FAMILIES` with cost features.
        input_shape: shape of one input sample (no batch dimension).
        num_classes: outputs of the classifier.
        int8: the study may quantize to int8 (``quantize`` in its space): two more features describe
            what int8 changes, so that a cost model that adds up costs can learn it — ``int8_layers``
            (layers that quantize and dequantize their activations: a fixed cost per call, which makes
            small networks *slower* in int8) and ``int8_macs`` (the multiply-accumulates run in int8
            kernels: cheaper per MAC); both 0 for a float network.
    """

    family: str
    input_shape: tuple[int, ...]
    num_classes: int
    int8: bool = False
    _fn: Callable[[Mapping[str, Any], tuple[int, ...], int], dict[str, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fam = get_family(self.family)
        if fam.cost_features is None:
            raise ConfigError("model.family", f"model family {self.family!r} has no cost features.", "pass cost_features= yourself, or none.")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "_fn", fam.cost_features)
        fam.cost_features({}, self.input_shape, self.num_classes)  # a wrong input shape fails here, not in the sampler

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        out = self._fn(pruned_widths(self.family, params), self.input_shape, self.num_classes)
        if self.int8:
            q = params.get("quantize") == "int8"
            layers = sum(v for k, v in out.items() if k in ("conv_layers", "hidden_layers", "conv_edges", "cells")) + 1
            out = {**out, "int8_layers": float(layers) if q else 0.0, "int8_macs": float(out.get("macs", 0.0)) if q else 0.0}
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (FamilyCostFeatures, (self.family, self.input_shape, self.num_classes, self.int8))

    @property
    def __name__(self) -> str:  # the label a Featurizer stores with its models (``derived_name``)
        return f"{self.family}_cost_features"
