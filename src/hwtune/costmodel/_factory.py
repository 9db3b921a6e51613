"""Building cost models by name, and rebuilding saved ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from hwtune.costmodel._base import FORMAT, CostModel, CostModelError, read_json
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._additive_gp import AdditiveGPCostModel
from hwtune.costmodel._gp import GPCostModel
from hwtune.costmodel._linear import AdditiveCostModel, LinearCostModel
from hwtune.costmodel._transfer import Source, TransferCostModel
from hwtune.exceptions import ConfigError
from hwtune.space import SearchSpace

__all__ = ["COST_MODELS", "make_cost_model", "model_from_dict", "load_cost_model", "space_from_dict"]

COST_MODELS: dict[str, type[CostModel]] = {
    "linear": LinearCostModel,
    "additive": AdditiveCostModel,
    "gp": GPCostModel,
    "additive-gp": AdditiveGPCostModel,
    "transfer": TransferCostModel,
}
"""Cost-model names (``predicted:<name>`` sources) and their classes."""


def make_cost_model(
    name: str,
    featurizer: Featurizer | SearchSpace,
    *,
    derived: DerivedFn | None = None,
    source: Source | None = None,
    **kwargs: Any,
) -> CostModel:
    """A new, unfitted cost model.

    Args:
        name: one of :data:`COST_MODELS`: ``linear`` (HyperPower-style, log target), ``additive``
            (linear in the metric itself), ``gp`` (Gaussian process), ``transfer`` (other devices'
            costs as features; needs ``source``).
        featurizer: a :class:`Featurizer`, or a :class:`SearchSpace` (a featurizer is built with
            ``derived``).
        derived: derived-feature callable when ``featurizer`` is a space.
        source: other devices' costs, for ``transfer``.
        **kwargs: the class's own settings (``target``, ``ard``...).
    """
    try:
        cls = COST_MODELS[name]
    except KeyError:
        raise ConfigError("cost_model", f"unknown cost model {name!r}.", f"use one of {', '.join(COST_MODELS)}.") from None
    if isinstance(featurizer, SearchSpace):
        featurizer = Featurizer(featurizer, derived)
    if cls is TransferCostModel:
        return TransferCostModel(featurizer, source, **kwargs)
    if source is not None:
        raise ConfigError("source", f"the {name!r} model takes no source.", "use name='transfer' to learn from other devices.")
    try:
        return cls(featurizer, **kwargs)
    except TypeError as e:
        raise ConfigError("cost_model", f"bad settings for {name!r}: {e}.") from None


def space_from_dict(spec: Mapping[str, Any]) -> SearchSpace:
    """Rebuild a space from :meth:`SearchSpace.to_dict` output, reading ``{type: fixed}`` entries as fixed values."""
    plain: dict[str, Any] = {}
    roles: dict[str, str] = {}
    for name, entry in spec.items():
        if isinstance(entry, Mapping) and entry.get("type") == "fixed":
            roles[name] = str(entry.get("role", "training"))
            value = entry.get("value")
            if isinstance(value, (list, tuple, dict)):
                continue  # not representable as a plain fixed value; fixed params are never features
            plain[name] = value
        else:
            plain[name] = entry
    return SearchSpace.from_dict(plain, default_roles=roles)


def model_from_dict(
    data: Mapping[str, Any],
    *,
    derived: DerivedFn | None = None,
    source: Source | None = None,
    refit: bool = True,
) -> CostModel:
    """Rebuild a model written by :meth:`CostModel.to_dict` (and refit it on its stored data).

    Args:
        data: the stored dict.
        derived: the derived-feature callable, required when the model was built with one.
        source: the other devices' costs, required for a transfer model.
        refit: fit on the stored observations (when there are any).

    Raises:
        CostModelError: wrong format, or a required ``derived``/``source`` is missing or differs.
    """
    if data.get("format") != FORMAT:
        raise CostModelError(f"not a saved cost model (format {data.get('format')!r}, expected {FORMAT!r}).")
    cls_name = data.get("class")
    classes = {c.__name__: c for c in COST_MODELS.values()}
    if cls_name not in classes:
        raise CostModelError(f"unknown cost-model class {cls_name!r}; known: {sorted(classes)}.")
    fz = data.get("featurizer") or {}
    space = space_from_dict(fz["space"])
    keys = fz.get("derived_keys")
    if fz.get("derived_name") and derived is None:
        raise CostModelError(
            f"the saved model used derived features {fz['derived_name']!r} ({keys}); pass derived= the same function."
        )
    featurizer = Featurizer(
        space,
        derived,
        log_derived=bool(fz.get("log_derived")),
        derived_name=fz.get("derived_name"),
        include_params=bool(fz.get("include_params", True)),
    )
    config = dict(data.get("config") or {})
    cls = classes[cls_name]
    model: CostModel
    if cls is TransferCostModel:
        if source is None:
            raise CostModelError("the saved model is a transfer model; pass source= (the other devices' costs).")
        model = TransferCostModel(featurizer, source, **config)
    else:
        model = cls(featurizer, **config)
    X = list(data.get("X_params") or [])
    y = list(data.get("y") or [])
    if refit and X:
        model.fit(X, y)
        got = featurizer._derived_keys
        if keys is not None and got is not None and list(got) != list(keys):
            raise CostModelError(f"derived features differ from the saved model's: got {got}, saved {keys}.")
    return model


def load_cost_model(
    path: str | Path,
    *,
    kind: type[CostModel] | None = None,
    derived: DerivedFn | None = None,
    source: Source | None = None,
    refit: bool = True,
) -> CostModel:
    """Read a model written by :meth:`CostModel.save` and refit it on its stored data.

    Args:
        path: the JSON file.
        kind: when given, the model must be an instance of this class.
        derived, source, refit: as in :func:`model_from_dict`.

    Raises:
        CostModelError: missing or unreadable file, wrong format or class, missing ``derived``/``source``.
    """
    p = Path(path)
    model = model_from_dict(read_json(p, "cost model file", "saved cost model"), derived=derived, source=source, refit=refit)
    if kind is not None and not isinstance(model, kind):
        raise CostModelError(f"{p} holds a {type(model).__name__}, not a {kind.__name__}.")
    return model


def _check_factory(factory: Callable[[], CostModel] | str, featurizer: Featurizer | SearchSpace | None) -> Callable[[], CostModel]:
    if isinstance(factory, str):
        if featurizer is None:
            raise ConfigError("model", "a model name needs a space or featurizer.", "pass featurizer= or a callable returning a model.")
        name = factory
        return lambda: make_cost_model(name, featurizer)  # type: ignore[arg-type]
    if not callable(factory):
        raise ConfigError("model", f"expected a model name or a callable, got {type(factory).__name__}.")
    return factory
