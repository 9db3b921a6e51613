"""``hwtune costmodel ...``: cross-validate cost models on a study's measurements, save them, run the NB201 benchmark.

The CLI layer, not ``costmodel``: for a study made from a study file it resolves the model family's
cost features (``hwtune.train.FamilyCostFeatures``), which ``costmodel`` may not import. Optuna (to read
a storage) and the family are imported lazily.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional, Sequence

import numpy as np
import typer

from hwtune.costmodel._evaluate import cross_validate
from hwtune.costmodel._factory import COST_MODELS, make_cost_model, space_from_dict
from hwtune.costmodel._features import DerivedFn, Featurizer
from hwtune.costmodel._online import DeviceCostModels, default_model_for, measured_value
from hwtune.exceptions import ConfigError, HwtuneError
from hwtune.space import METRICS, SearchSpace
from hwtune.vocabulary import CONFIG_ATTR, HARDWARE_ATTR

__all__ = ["costmodel_app", "measurements_from_records", "read_study", "resolve_derived", "family_cost_features", "study_derived"]

costmodel_app = typer.Typer(
    help="Cost models: how well hardware costs are predicted from a study's own measurements.",
    no_args_is_help=True,
)


# -- reading a study (plain records, so that the logic is testable without a storage) -------------
def measurements_from_records(
    records: Sequence[Mapping[str, Any]], space: SearchSpace
) -> dict[str, tuple[list[dict[str, Any]], np.ndarray, list[str]]]:
    """Measured hardware values per metric from trial records.

    Args:
        records: one dict per trial with ``params`` and ``user_attrs`` (:data:`HARDWARE_ATTR` = metric ->
            measurement dict).
        space: the study's space (fixed params are added, training params dropped).

    Returns:
        metric -> (hardware params of each measured candidate, values of shape (n,), sources). Values
        that are missing, non-finite or ``predicted:*`` are left out.
    """
    out: dict[str, tuple[list[dict[str, Any]], list[float], list[str]]] = {}
    for rec in records:
        hw = (rec.get("user_attrs") or {}).get(HARDWARE_ATTR)
        if not isinstance(hw, Mapping):
            continue
        params = space.hardware_params(space.complete(rec.get("params") or {}))
        for metric, m in hw.items():
            if metric not in METRICS or METRICS[metric].kind != "hardware" or not isinstance(m, Mapping):
                continue
            fv = measured_value(m)
            if fv is None:
                continue
            src = str(m.get("source", ""))
            p, ys, ss = out.setdefault(metric, ([], [], []))
            p.append(params)
            ys.append(fv)
            ss.append(src)
    return {k: (p, np.asarray(ys, dtype=float), s) for k, (p, ys, s) in out.items()}


def read_study(storage: str, study_name: str) -> tuple[SearchSpace, list[dict[str, Any]], dict[str, Any]]:
    """Load a study's space (from its :data:`CONFIG_ATTR`), its trials as plain records, and the config."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
        raise ConfigError("--study", f"no study {study_name!r} in {storage}.", f"use one of {names}.") from None
    config = study.user_attrs.get(CONFIG_ATTR)
    if not isinstance(config, Mapping) or "space" not in config:
        raise ConfigError("--study", f"study {study_name!r} has no {CONFIG_ATTR} with a space.", "evaluate a study created by hwtune.")
    space = space_from_dict(config["space"])
    records = [{"number": t.number, "params": dict(t.params), "user_attrs": dict(t.user_attrs)} for t in study.get_trials(deepcopy=False)]
    return space, records, dict(config)


def resolve_derived(spec: str | None) -> DerivedFn | None:
    """``None``/``""``/``none`` -> None; ``nb201`` -> :func:`nb201_derived`; ``module:function`` -> that function."""
    if not spec or spec == "none":
        return None
    if spec == "nb201":
        from hwtune.costmodel._nb201 import nb201_derived

        return nb201_derived
    mod, _, fn = spec.partition(":")
    if not fn:
        raise ConfigError("--derived", f"cannot read {spec!r}.", "write 'none', 'nb201' or 'package.module:function'.")
    try:
        f = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ConfigError("--derived", f"cannot import {spec!r}: {e}.", "check the module path and function name.") from None
    if not callable(f):
        raise ConfigError("--derived", f"{spec!r} is not callable.")
    return f  # type: ignore[no-any-return]


def family_cost_features(config: Mapping[str, Any]) -> DerivedFn | None:
    """The model family's cost features of a study made from a study file, or None.

    Read from the stored definition's ``description``: ``family`` and ``data`` (``input_shape``,
    ``num_classes``), as ``study_from_file`` writes them; the same features the study's own cost
    model used. None when the study has no such description or its family has no cost features.
    """
    desc = config.get("description")
    if not isinstance(desc, Mapping) or not isinstance(desc.get("family"), str):
        return None
    data = desc.get("data")
    shape = data.get("input_shape") if isinstance(data, Mapping) else None
    shape = shape if shape is not None else config.get("input_shape")
    classes = data.get("num_classes") if isinstance(data, Mapping) else None
    if not shape or classes is None:
        return None
    from hwtune.train import FAMILIES, FamilyCostFeatures

    family = FAMILIES.get(desc["family"])
    if family is None or family.cost_features is None:
        return None
    q = (config.get("space") or {}).get("quantize") if isinstance(config.get("space"), Mapping) else None
    int8 = isinstance(q, Mapping) and ("int8" in (q.get("choices") or []) or q.get("value") == "int8")
    # a study that may quantize had the int8 features too (study._config._may_quantize)
    return FamilyCostFeatures(family.name, tuple(int(s) for s in shape), int(classes), int8=bool(int8))


def study_derived(spec: str | None, config: Mapping[str, Any]) -> tuple[DerivedFn | None, str]:
    """Derived features for a stored study, and a line saying which.

    ``--derived`` given (``nb201``, ``module:function``): that; ``none``: no derived features; not
    given: the study's model family's cost features (:func:`family_cost_features`), when it has any.
    """
    if spec:
        fn = resolve_derived(spec)
        return fn, "derived features: none" if fn is None else f"derived features: {spec}"
    fn = family_cost_features(config)
    if fn is None:
        return None, "derived features: none (the study names no built-in family with cost features; see --derived)"
    return fn, f"derived features: {getattr(fn, '__name__', 'derived')} of the study's model family"


_DERIVED_HELP = (
    "Derived features: 'nb201', 'module:function', or 'none'; default: the cost features of the study's "
    "model family (a study made from a study file), as the study's own cost model used them."
)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


# -- commands --------------------------------------------------------------------------------
@costmodel_app.command("evaluate")
def evaluate_cmd(
    study: Annotated[str, typer.Option("--study", "-s", help="Study name.")],
    storage: Annotated[str, typer.Option("--storage", help="Optuna storage URL.")] = "sqlite:///hwtune.db",
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="Hardware metric (repeatable); default: every measured one.")] = None,
    model: Annotated[list[str], typer.Option("--model", help=f"'auto' or one of {', '.join(n for n in COST_MODELS if n != 'transfer')} (repeatable, to compare).")] = ["auto"],  # noqa: B006
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds.")] = 5,
    derived: Annotated[str, typer.Option("--derived", help=_DERIVED_HELP)] = "",
    params: Annotated[bool, typer.Option("--params/--no-params", help="Use the params themselves as features (besides derived ones).")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON here.")] = None,
) -> None:
    """Cross-validate cost models on a study's own hardware measurements."""
    try:
        space, records, config = read_study(storage, study)
        derived_fn, derived_line = study_derived(derived, config)
        featurizer = Featurizer(space, derived_fn, include_params=params)
        data = measurements_from_records(records, space)
        metrics = list(metric) if metric else sorted(data)
        if not metrics:
            raise ConfigError("--study", f"study {study!r} has no hardware measurements yet.", "run some trials first.")
        for name in model:
            if name != "auto" and (name not in COST_MODELS or name == "transfer"):
                raise ConfigError("--model", f"unknown or unsupported model {name!r}.", f"use auto or one of {', '.join(n for n in COST_MODELS if n != 'transfer')}.")
        if derived_fn is not None and metrics[0] in data:
            featurizer.transform(data[metrics[0]][0][:1])  # learn the derived feature names
            derived_line += ": " + ", ".join(n.removeprefix("derived:") for n in featurizer.feature_names[featurizer.n_param_features:])
        typer.echo(derived_line + ("" if params else " (params themselves left out)"))
        results: list[dict[str, Any]] = []
        typer.echo(f"{'metric':14s} {'model':11s} {'n':>4s} {'folds':>5s} {'Spearman':>8s} {'MdAPE':>7s} {'90% cov':>7s}  sources")
        for m in metrics:
            if m not in data:
                raise ConfigError("--metric", f"no measurements of {m!r} in study {study!r}.", f"measured: {sorted(data) or 'none'}.")
            X, y, sources = data[m]
            for name in model:
                mname = default_model_for(m) if name == "auto" else name
                target = {"target": "linear"} if np.any(y <= 0) else {}
                if len(y) < 4:
                    typer.echo(f"{m:14s} {mname:11s} {len(y):4d}   too few measurements to cross-validate (need 4)")
                    continue
                res = cross_validate(lambda mname=mname, target=target: make_cost_model(mname, featurizer, **target), X, y, folds, seed=seed)
                src = ", ".join(sorted(set(sources)))
                typer.echo(
                    f"{m:14s} {mname:11s} {len(y):4d} {res['folds']:5d} {res['spearman']:8.3f} {res['mdape'] * 100:6.1f}% {res['coverage']:7.2f}  {src}"
                )
                res = {k: v for k, v in res.items() if k != "predictions"}
                results.append({"metric": m, "model": mname, "sources": sorted(set(sources)), **res})
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            features = {"derived": featurizer.derived_name, "columns": featurizer.feature_names}
            json_out.write_text(json.dumps({"study": study, "storage": storage, "features": features, "results": results}, indent=1))
            typer.echo(f"wrote {json_out}")
    except HwtuneError as e:
        _fail(e)


@costmodel_app.command("save")
def save_cmd(
    study: Annotated[str, typer.Option("--study", "-s", help="Study name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Device cost file to write (JSON).")],
    storage: Annotated[str, typer.Option("--storage", help="Optuna storage URL.")] = "sqlite:///hwtune.db",
    device: Annotated[str, typer.Option("--device", help="Device label stored with the measurements.")] = "",
    derived: Annotated[str, typer.Option("--derived", help=_DERIVED_HELP)] = "",
) -> None:
    """Save a study's hardware measurements as a device cost file, for later studies on that device."""
    try:
        space, records, config = read_study(storage, study)
        derived_fn, _ = study_derived(derived, config)
        dcm = DeviceCostModels(space, derived=derived_fn, device=device or str(config.get("device") or "") or None)
        data = measurements_from_records(records, space)
        for m, (X, y, _) in data.items():
            for p, v in zip(X, y):
                dcm.observe(p, {m: float(v)})
        dcm.save(out)
        counts = ", ".join(f"{m}: {dcm.n_observations(m)}" for m in dcm.observed_metrics()) or "no measurements"
        typer.echo(f"wrote {out} ({counts})")
    except HwtuneError as e:
        _fail(e)


@costmodel_app.command("nb201")
def nb201_cmd(
    configs: Annotated[str, typer.Option("--configs", help="Comma-separated benchmark configs (default: all).")] = "",
    ks: Annotated[str, typer.Option("--ks", help="Training-set sizes.")] = "10,20,50",
    repetitions: Annotated[int, typer.Option("--repetitions")] = 5,
    devices: Annotated[str, typer.Option("--devices", help="Comma-separated device columns (default: all 27).")] = "",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for costmodel_nb201.json and .md.")] = None,
) -> None:
    """Benchmark the cost models on the NB201 table of 27 real devices (a few minutes)."""
    from hwtune.costmodel._benchmark import format_markdown, format_table, run_nb201_benchmark

    try:
        res = run_nb201_benchmark(
            ks=[int(k) for k in ks.split(",") if k],
            repetitions=repetitions,
            configs=[c for c in configs.split(",") if c] or None,
            devices=[d for d in devices.split(",") if d] or None,
            seed=seed,
            progress=lambda s: typer.echo(s, err=True),
        )
    except ValueError as e:
        _fail(e)
        return
    typer.echo(format_table(res))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "costmodel_nb201.json").write_text(json.dumps(res, indent=1))
        (out / "costmodel_nb201.md").write_text(format_markdown(res) + "\n")
        typer.echo(f"wrote {out / 'costmodel_nb201.json'} and {out / 'costmodel_nb201.md'}")
