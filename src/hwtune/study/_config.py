"""Study files (YAML): a thin layer that builds a :class:`Study` and its two callables.

Every field is validated before anything is written; errors name the field and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwtune.exceptions import ConfigError
from hwtune.study._storage import DEFAULT_STORAGE
from hwtune.study._study import Study, TrialContext
from hwtune.study._validate import (
    MAX_INFERENCE_BATCH,
    check_cost_model_file,
    check_objectives_and_constraints,
)
from hwtune.vocabulary import COMPRESSION_ATTR, TRAIN_SETTINGS_ATTR

__all__ = ["ClassifierTrainer", "FamilyBuilder", "StudyFile", "default_study_file", "load_study_file", "study_from_file"]


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
    minutes: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class LatencySpec(_Strict):
    rel_ci: float = Field(default=0.05, gt=0, lt=1, allow_inf_nan=False)
    max_time_s: float = Field(default=3.0, gt=0, allow_inf_nan=False)


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
    inference_batch_size: int = Field(default=1, ge=1, le=MAX_INFERENCE_BATCH)
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec(trials=30))
    seed: int = Field(default=0, ge=0)
    sampler: str = "hwtune"
    latency: LatencySpec = Field(default_factory=LatencySpec)
    pruner: str | dict[str, Any] | None = None
    cost_model: str = "auto"
    skip_threshold: float = Field(default=0.001, ge=0, lt=1, allow_inf_nan=False)
    cost_model_file: str | None = None
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    keep_models: Literal["best", "pareto", "all", "none"] = "pareto"
    runtime: Literal["torch", "torchscript", "onnxruntime", "keras"] = "onnxruntime"  # hardware.DEFAULT_RUNTIME; a keras study's default: keras
    framework: Literal["torch", "keras"] = "torch"  # study._framework: who builds, measures and trains the networks
    artifacts: str | None = None
    executor: str | dict[str, Any] | None = None  # local (default) or ray: study._ray_executor.executor_from_spec

    @field_validator("constraints", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


_SECTIONS: dict[str, type[BaseModel]] = {"data": DataSpec, "model": ModelSpec, "budget": BudgetSpec, "latency": LatencySpec, "trainer": TrainerSpec}

MAX_FILE_BYTES = 1_000_000
"""Largest study file read (a study file is a few hundred bytes)."""
MAX_DEPTH = 50
"""Deepest nesting of YAML collections in a study file."""
MAX_NODES = 100_000
"""Most YAML nodes a study file may hold once its aliases are expanded (refuses alias bombs)."""
_ECHO = 80
"""Most characters of a user value an error message repeats."""


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= _ECHO else text[: _ECHO - 3] + "..."


def _did_you_mean(key: Any, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def _one_error(problems: list[tuple[str, str, str | None]]) -> ConfigError:
    """One ``ConfigError`` reporting every problem (the first one's field leads)."""
    if len(problems) == 1:
        return ConfigError(*problems[0])
    lines = [f"{f}: {p}" + (f" Fix: {x}" if x else "") for f, p, x in problems]
    fields = ", ".join(dict.fromkeys(f for f, _, _ in problems))
    return ConfigError(fields, f"{len(problems)} problems:\n  - " + "\n  - ".join(lines))


def _pydantic_problems(e: ValidationError) -> list[tuple[str, str, str | None]]:
    unknown: list[tuple[str, str, str | None]] = []
    other: list[tuple[str, str, str | None]] = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "study file"
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            model = StudyFile if len(err["loc"]) == 1 else _SECTIONS.get(str(err["loc"][0]), StudyFile)
            valid = sorted(model.model_fields)
            unknown.append((loc, "unknown key.", f"{_did_you_mean(err['loc'][-1], valid)}remove it or use one of: {', '.join(valid)}."))
        elif kind == "missing":
            other.append((loc, "required but missing.", f"add '{err['loc'][-1]}:' to the study file (docs/study-files.md)."))
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            limits = " and ".join(f"{op} {ctx[k]}" for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if k in ctx)
            other.append((loc, f"{err['msg']} (got {_short(err.get('input'))}).", f"use a value {limits}."))
        elif kind == "finite_number":
            other.append((loc, f"must be a finite number (got {_short(err.get('input'))}).", "use a positive number."))
        else:
            other.append((loc, f"{err['msg']} (got {_short(err.get('input'))}).", "correct the value's type or range (docs/study-files.md)."))
    return unknown + other


def _space_problems(space: Any) -> list[tuple[str, str, str | None]]:
    """Unknown keys of param entries (``typ:``), found before the space is parsed."""
    from hwtune.space._space import _KEYS

    if not isinstance(space, Mapping):
        return []
    valid = sorted(set().union(*_KEYS.values()))
    out: list[tuple[str, str, str | None]] = []
    for name, entry in space.items():
        if not isinstance(entry, Mapping):
            continue
        for key in entry:
            if key not in valid:
                out.append((f"space.{name}.{key}", f"unknown key {str(key)!r}.", f"{_did_you_mean(key, valid)}a param takes: {', '.join(valid)}."))
        if "type" not in entry and not any(f"space.{name}." in f for f, _, _ in out):
            out.append((f"space.{name}.type", "missing.", "add 'type: int', 'type: float' or 'type: categorical' (or write a plain value to fix the param)."))
    return out


def parse_study_file(raw: Mapping[str, Any], source: str = "study file") -> StudyFile:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "the top level must be a mapping of keys to values.", "start the file with 'space:' and the other keys of docs/study-files.md.")
    problems: list[tuple[str, str, str | None]] = []
    try:
        spec = StudyFile.model_validate(dict(raw))
    except ValidationError as e:
        problems = _pydantic_problems(e)
        spec = None
    problems += _space_problems(raw.get("space"))
    if problems:
        raise _one_error(problems)
    assert spec is not None
    return spec


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, fix: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.mark = problem, fix, mark


class _StudyLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys, deep nesting and alias bombs."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", "a study file is a few levels deep: check the brackets", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            if id(node) not in self._sizes:
                raise _Refused("an alias refers to the collection that contains it", "remove the recursive alias", mark)
            return node
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for kv in node.value for n in kv]
        else:
            children = []
        size = 1 + sum(self._sizes.get(id(c), 0) for c in children)
        if size > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES:,} values through its aliases (&/*)", "write the values out, or use fewer aliases", mark)
        self._sizes[id(node)] = size
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise _Refused(
                    f"key {_short(key)} is given twice (lines {seen[key].line + 1} and {key_node.start_mark.line + 1})",
                    "keep one of them: YAML would silently keep the last",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """Parse study-file YAML safely; every refusal is a ``ConfigError`` naming ``source``."""
    try:
        return yaml.load(text, Loader=_StudyLoader)
    except _Refused as e:
        where = f" (line {e.mark.line + 1})" if e.mark is not None else ""
        raise ConfigError(source, f"{e.problem}{where}.", f"{e.fix}.") from None
    except RecursionError:
        raise ConfigError(source, "is nested too deeply to read.", "a study file is a few levels deep: check the brackets.") from None
    except yaml.YAMLError as e:
        text_e = str(e)
        if len(text_e) > 400:
            text_e = text_e[:397] + "..."
        raise ConfigError(source, f"is not valid YAML: {text_e}.", "fix the syntax at the line shown (indentation, colons, quotes).") from None


def load_study_file(path: str | Path) -> StudyFile:
    """Read and validate a YAML study file (the study name defaults to the file's stem)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError("study file", f"{str(p)!r} is a directory.", "give the path of a YAML study file inside it.")
    if not p.is_file():
        raise ConfigError("study file", f"{str(p)!r} does not exist.", "give the path of a YAML study file.")
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(str(p), f"is {size:,} bytes; a study file is at most {MAX_FILE_BYTES:,}.", "give the YAML study file, not a data file.")
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), f"cannot be read: {e.strerror or e}.", "check the path and its permissions.") from None
    if b"\x00" in data:
        raise ConfigError(str(p), "is a binary file, not YAML text.", "give the YAML study file (docs/study-files.md).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            str(p), f"is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}).",
            "save the study file as UTF-8 (e.g. iconv -f latin1 -t utf-8).",
        ) from None
    raw = read_yaml(text, str(p))
    if isinstance(raw, dict) and "name" not in raw:
        raw["name"] = p.stem
    return parse_study_file(raw, str(p))


def default_study_file() -> StudyFile:
    """The embedded default study (digits, small CNN, CPU latency limit)."""
    text = resources.files("hwtune.study").joinpath("default_study.yaml").read_text()
    return parse_study_file(read_yaml(text, "default study"), "default study")


@dataclass(frozen=True)
class FamilyBuilder:
    """``build_model`` for a built-in family (picklable, for worker processes)."""

    family: str
    input_shape: tuple[int, ...]
    num_classes: int
    framework: str = "torch"  # study._framework.FRAMEWORKS

    def __call__(self, params: dict[str, Any]) -> Any:
        from hwtune.study._framework import get_framework

        return get_framework(self.framework).build(self.family, params, self.input_shape, self.num_classes)


@dataclass(frozen=True)
class ClassifierTrainer:
    """``train_and_evaluate`` with the built-in trainer; loads its data set once per process."""

    data: DataSpec
    seed: int
    device: Any
    options: Any = None
    """``hwtune.train.TrainerOptions`` (``None``: the defaults)."""
    framework: str = "torch"
    """Whose trainer trains (``study._framework.FRAMEWORKS``)."""

    def dataset(self) -> Any:
        from hwtune.train import load_dataset

        cache = _DATA_CACHE
        key = (self.data.model_dump_json(), self.seed)
        if key not in cache:
            cache[key] = load_dataset(self.data.name, self.data.path, seed=self.seed, **self.data.options)
        return cache[key]

    def __call__(self, model: Any, params: dict[str, Any], ctx: TrialContext) -> dict[str, float]:
        from hwtune.study._framework import get_framework

        metrics, settings = get_framework(self.framework).train(
            model, self.dataset(), params, seed=ctx.seed, device=self.device, reporter=ctx.report, options=self.options,
        )
        record = getattr(ctx, "set_user_attr", None)
        if callable(record):
            record(TRAIN_SETTINGS_ATTR, settings)
        plan = getattr(ctx, "compression", None)
        if plan is not None:  # the delivered network is the compressed one: its errors are the trial's
            model, metrics = self._compress(model, plan, ctx, metrics)
        keep = getattr(ctx, "keep_model", None)
        # trained in place: the study keeps it through its framework (keep_models; Framework.save_kept)
        if callable(keep):
            keep(model)
        return metrics

    def _compress(self, model: Any, plan: Any, ctx: TrialContext, metrics: dict[str, float]) -> tuple[Any, dict[str, float]]:
        """Prune, fine-tune (self-distillation), quantize the trained network; its errors replace the
        uncompressed ones, which are kept in ``hwtune:compression`` (``error_before``...)."""
        from hwtune.compress import compress_trained, evaluate_compressed

        with self.device.activate():
            compressed, info = compress_trained(model, plan, self.dataset(), seed=ctx.seed, device=self.device.torch_device)
            errors = evaluate_compressed(compressed, plan, self.dataset(), device=self.device.torch_device)
        info.update({f"{k}_before": metrics[k] for k in ("error", "test_error") if k in metrics})
        info["errors_of"] = "int8 ONNX Runtime model (calibrated on training batches)" if plan.int8 else "the compressed network"
        record = getattr(ctx, "set_user_attr", None)
        if callable(record):
            record(COMPRESSION_ATTR, info)
        out = {k: v for k, v in metrics.items() if k != "accuracy"}
        out.update(errors)
        return compressed, out


_DATA_CACHE: dict[Any, Any] = {}


def _data_source(data: DataSpec) -> dict[str, Any]:
    """The data section as stored with the study: a path made absolute, so that it is found from elsewhere."""
    path = str(Path(data.path).expanduser().resolve()) if data.path else None
    return {"name": data.name, "path": path, "options": dict(data.options)}


def _nb201_prior(family: str) -> Any:
    """The published NATS-Bench errors of the same cell (all three tasks) as the sampler's error prior,
    for a study of the ``nb201`` family (an edge the space leaves out is the family's ``nor_conv_3x3``)."""
    from hwtune.tabular import nb201_error_prior

    return nb201_error_prior() if family == "nb201" else None


def _may_quantize(space: Any) -> bool:
    """Whether a trial of ``space`` may be quantized to int8 (its cost features then describe int8)."""
    if "quantize" not in space:
        return False
    p = space["quantize"]
    return "int8" in (list(getattr(p, "choices", ())) + [getattr(p, "value", None)])


def study_from_file(spec: StudyFile, storage: str | None = None, name: str | None = None) -> tuple[Study, FamilyBuilder, ClassifierTrainer]:
    """Build the study and its callables, validating data, family and space (nothing is written)."""
    from hwtune.search import make_pruner
    from hwtune.space import (
        FixedParam,
        IntParam,
        SearchSpace,
        parse_constraints,
        parse_objectives,
    )
    from hwtune.train import (
        FamilyCostFeatures,
        TrainerOptions,
        get_family,
        load_dataset,
    )

    family = get_family(spec.model.family)
    # checks that need no data: before the data set is loaded (and long before any storage exists)
    check_objectives_and_constraints(parse_objectives(spec.objective), parse_constraints(spec.constraints))
    if spec.cost_model_file is not None:
        check_cost_model_file(spec.cost_model_file)
    from hwtune.compress import COMPRESSION_PARAMS, compression_roles
    from hwtune.study._framework import get_framework

    framework = get_framework(spec.framework, "framework")
    # a keras study measures in Keras unless it names a runtime; a runtime of another framework is refused
    runtime = spec.runtime if "runtime" in spec.model_fields_set else framework.default_runtime
    framework.check_runtime(runtime, installed=False)
    names = list(spec.space) if isinstance(spec.space, Mapping) else []
    space = SearchSpace.from_dict(spec.space, default_roles={**compression_roles(names), **family.default_roles(names)})
    framework.check_space(space, runtime)  # e.g. compression params: names the param and the fix; before the data is loaded
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
        raise ConfigError("data.options", f"{e}.", f"use the options of {spec.data.name!r} listed in docs/study-files.md (Data options).") from None
    family.validate_space(space, data.input_shape, data.num_classes, checked_elsewhere=COMPRESSION_PARAMS)
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
        # data_source: what load_model / validation_inputs need to rebuild the network and its data later
        description={"data": data.describe(), "family": family.name, "data_source": _data_source(spec.data), **({"framework": framework.name} if framework.name != "torch" else {})},
        keep_models=spec.keep_models,
        runtime=runtime,
        artifacts=spec.artifacts,
        # the cost model learns from what the family computes without training (parameter count,
        # multiply-accumulates, the width feeding the dense layer...), not from the raw params alone
        cost_features=FamilyCostFeatures(family.name, data.input_shape, data.num_classes, int8=_may_quantize(space)) if family.cost_features else None,
        error_prior=_nb201_prior(family.name),
    )
    study.default_measure()  # fails now if a constrained metric cannot be measured
    if spec.executor is not None:  # issue 16: `executor: ray` (checked now; Ray is imported when the study runs)
        from hwtune.study._ray_executor import executor_from_spec

        study.executor = executor_from_spec(spec.executor)  # type: ignore[attr-defined]
    _DATA_CACHE[(spec.data.model_dump_json(), spec.seed)] = data
    builder = FamilyBuilder(family.name, data.input_shape, data.num_classes, framework.name)
    trainer = ClassifierTrainer(spec.data, spec.seed, study.device, options, framework.name)
    return study, builder, trainer
