"""Study files (YAML): a thin layer that builds a :class:`Study` and its two callables.

Every field is validated before anything is written; errors name the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwtune.exceptions import ConfigError
from hwtune.study._storage import DEFAULT_STORAGE
from hwtune.study._study import Study, TrialContext
from hwtune.vocabulary import TRAIN_SETTINGS_ATTR

__all__ = ["StudyFile", "load_study_file", "default_study_file", "FamilyBuilder", "ClassifierTrainer", "study_from_file"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class DataSpec(_Strict):
    name: str = "digits"
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(_Strict):
    family: str = "cnn"


class BudgetSpec(_Strict):
    trials: int | None = Field(default=None, ge=1)
    trained: int | None = Field(default=None, ge=1)
    minutes: float | None = Field(default=None, gt=0)


class LatencySpec(_Strict):
    rel_ci: float = Field(default=0.05, gt=0, lt=1)
    max_time_s: float = Field(default=3.0, gt=0)


class TrainerSpec(_Strict):
    """Switches of the built-in trainer (not searched); see ``hwtune.train.TrainerOptions``."""

    amp: bool | str = "auto"
    channels_last: bool | str = "auto"
    compile: bool | str = False
    data_on_device: bool | str = "auto"
    ddp_processes: int = Field(default=1, ge=1)
    ddp_backend: str = "auto"
    ddp_timeout_s: float = Field(default=300.0, gt=0)


class StudyFile(_Strict):
    """Schema of a study file. Unknown keys are errors."""

    name: str = "default"
    storage: str = DEFAULT_STORAGE
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    space: dict[str, Any]
    objective: Any = "minimize: error"
    constraints: list[str] = Field(default_factory=list)
    device: str = "cpu"
    inference_batch_size: int = Field(default=1, ge=1)
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec(trials=30))
    seed: int = 0
    sampler: str = "hwtune"
    latency: LatencySpec = Field(default_factory=LatencySpec)
    pruner: str | dict[str, Any] | None = None
    cost_model: str = "auto"
    skip_threshold: float = Field(default=0.001, ge=0, lt=1)
    cost_model_file: str | None = None
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)

    @field_validator("constraints", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


def _pydantic_to_config_error(e: ValidationError) -> ConfigError:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "study file"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = ", ".join(sorted(StudyFile.model_fields)) if len(err["loc"]) == 1 else "see docs/study-files.md"
        return ConfigError(loc, "unknown key.", f"remove it or use one of: {known}.")
    if kind == "missing":
        return ConfigError(loc, "required but missing.", f"add '{err['loc'][-1]}:' to the study file.")
    return ConfigError(loc, f"{err['msg']} (got {err.get('input')!r}).", "correct the value's type or range.")


def parse_study_file(raw: Mapping[str, Any], source: str = "study file") -> StudyFile:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "the top level must be a mapping of keys to values.")
    try:
        return StudyFile.model_validate(dict(raw))
    except ValidationError as e:
        raise _pydantic_to_config_error(e) from None


def load_study_file(path: str | Path) -> StudyFile:
    """Read and validate a YAML study file (the study name defaults to the file's stem)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("study file", f"{str(p)!r} does not exist.", "give the path of a YAML study file.")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(str(p), f"is not valid YAML: {e}.") from None
    if isinstance(raw, dict) and "name" not in raw:
        raw["name"] = p.stem
    return parse_study_file(raw, str(p))


def default_study_file() -> StudyFile:
    """The embedded default study (digits, small CNN, CPU latency limit)."""
    text = resources.files("hwtune.study").joinpath("default_study.yaml").read_text()
    return parse_study_file(yaml.safe_load(text), "default study")


@dataclass(frozen=True)
class FamilyBuilder:
    """``build_model`` for a built-in family (picklable, for worker processes)."""

    family: str
    input_shape: tuple[int, ...]
    num_classes: int

    def __call__(self, params: dict[str, Any]) -> Any:
        from hwtune.train import get_family

        return get_family(self.family).build(params, self.input_shape, self.num_classes)


@dataclass(frozen=True)
class ClassifierTrainer:
    """``train_and_evaluate`` with the built-in trainer; loads its data set once per process."""

    data: DataSpec
    seed: int
    device: Any
    options: Any = None
    """``hwtune.train.TrainerOptions`` (``None``: the defaults)."""

    def dataset(self) -> Any:
        from hwtune.train import load_dataset

        cache = _DATA_CACHE
        key = (self.data.model_dump_json(), self.seed)
        if key not in cache:
            cache[key] = load_dataset(self.data.name, self.data.path, seed=self.seed, **self.data.options)
        return cache[key]

    def __call__(self, model: Any, params: dict[str, Any], ctx: TrialContext) -> dict[str, float]:
        from hwtune.train import train_classifier

        with self.device.activate():
            # strict=False: a param shared by only some of the searched optimizers / schedules is
            # ignored in the trials where it does not apply (validate_space checked the rest)
            res = train_classifier(
                model, self.dataset(), params, seed=ctx.seed, device=self.device.torch_device, reporter=ctx.report,
                options=self.options, strict=False,
            )
        record = getattr(ctx, "set_user_attr", None)
        if callable(record):
            record(TRAIN_SETTINGS_ATTR, res.settings)
        return res.metrics()


_DATA_CACHE: dict[Any, Any] = {}


def study_from_file(spec: StudyFile, storage: str | None = None, name: str | None = None) -> tuple[Study, FamilyBuilder, ClassifierTrainer]:
    """Build the study and its callables, validating data, family and space (nothing is written)."""
    from hwtune.search import make_pruner
    from hwtune.space import FixedParam, IntParam, SearchSpace, parse_objectives
    from hwtune.train import FamilyCostFeatures, TrainerOptions, get_family, load_dataset

    family = get_family(spec.model.family)
    space = SearchSpace.from_dict(spec.space, default_roles=family.default_roles(list(spec.space)))
    epochs = space["epochs"] if "epochs" in space else None
    max_epochs = (
        int(epochs.value) if isinstance(epochs, FixedParam) and isinstance(epochs.value, int) and not isinstance(epochs.value, bool)
        else epochs.high if isinstance(epochs, IntParam) else None
    )
    pruner = make_pruner(spec.pruner, n_objectives=len(parse_objectives(spec.objective)), max_epochs=max_epochs)
    options = TrainerOptions.from_mapping(spec.trainer.model_dump())
    try:
        data = load_dataset(spec.data.name, spec.data.path, seed=spec.seed, **spec.data.options)
    except TypeError as e:
        raise ConfigError("data.options", f"{e}.", "see the loader's options in docs/study-files.md.") from None
    family.validate_space(space, data.input_shape, data.num_classes)
    study = Study(
        name or spec.name,
        space,
        objectives=spec.objective,
        constraints=spec.constraints,
        storage=storage or spec.storage,
        device=spec.device,
        input_shape=data.input_shape,
        inference_batch_size=spec.inference_batch_size,
        sampler=spec.sampler,
        pruner=pruner,
        seed=spec.seed,
        latency_rel_ci=spec.latency.rel_ci,
        latency_max_time_s=spec.latency.max_time_s,
        cost_model=None if spec.cost_model == "none" else spec.cost_model,
        skip_threshold=spec.skip_threshold,
        cost_model_file=spec.cost_model_file,
        description={"data": data.describe(), "family": family.name},
        # the cost model learns from what the family computes without training (parameter count,
        # multiply-accumulates, the width feeding the dense layer...), not from the raw params alone
        cost_features=FamilyCostFeatures(family.name, data.input_shape, data.num_classes) if family.cost_features else None,
    )
    study.default_measure()  # fails now if a constrained metric cannot be measured
    _DATA_CACHE[(spec.data.model_dump_json(), spec.seed)] = data
    builder = FamilyBuilder(family.name, data.input_shape, data.num_classes)
    trainer = ClassifierTrainer(spec.data, spec.seed, study.device, options)
    return study, builder, trainer
