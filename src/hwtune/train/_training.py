"""The training params the built-in trainer reads: names, kinds, valid ranges, and which choice they belong to.

Training params are ordinary params of the search space (role ``training``). Some belong to one
choice of another param: ``beta1`` is read only when ``optimizer`` is ``adam`` or ``adamw``,
``step_gamma`` only when ``schedule`` is ``step``. Two checks use this table:

- :func:`validate_training_space` (called by ``ModelFamily.validate_space`` before a study starts):
  every value a param can take is of the right kind and in range, every choice is known, a condition
  on ``optimizer``/``schedule``/``augment`` names a value that param can take, and a param that
  belongs to some optimizer (schedule...) is active for at least one of them.
- :func:`resolve_training` (called by the trainer for one trial): the same checks on concrete values,
  and -- with ``strict=True``, the default of the Python API -- a param of another optimizer than the
  chosen one is an error. The study loop calls it with ``strict=False``, because a param that belongs
  to only some of the searched optimizers may be unconditional in a space (it is then ignored in the
  trials where it does not apply).

No PyTorch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from hwtune.exceptions import ConfigError

if TYPE_CHECKING:
    from hwtune.space import SearchSpace

__all__ = [
    "TrainingParam",
    "TRAINING_SPECS",
    "OPTIMIZER_NAMES",
    "SCHEDULE_NAMES",
    "AUGMENT_NAMES",
    "SELECTOR_DEFAULTS",
    "TrainingPlan",
    "resolve_training",
    "validate_training_space",
]

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
"""PyTorch's ``SGD`` (momentum, Nesterov), ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW``."""

SCHEDULE_NAMES: tuple[str, ...] = (
    "constant", "step", "exponential", "cosine", "cosine_restarts", "plateau", "onecycle",
    "hypergradient", "bold_driver",
)
"""Fixed schedules (PyTorch's schedulers) and the two online adaptive methods."""

AUGMENT_NAMES: tuple[str, ...] = ("none", "crop", "flip", "crop_flip")

SELECTOR_DEFAULTS: dict[str, str] = {"optimizer": "sgd", "schedule": "constant", "augment": "none"}
"""Value of a choice param when the space does not have it."""



@dataclass(frozen=True)
class TrainingParam:
    """One param the trainer reads.

    Attributes:
        name: param name in the space.
        kind: ``float``, ``int`` (whole numbers), ``bool`` or ``choice`` (one of ``choices``).
        low, high: inclusive valid range of numeric kinds (in a search space).
        choices: valid values of a ``choice``.
        owner: ``(choice param, values)``: the param is read only when that param takes one of them.
        doc: one line for help texts and errors.
        hard_high: the trainer rejects values above ``high`` too (otherwise only spaces are held to it).
    """

    name: str
    kind: str
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[Any, ...] = ()
    owner: tuple[str, frozenset[str]] | None = None
    doc: str = ""
    hard_high: bool = True


_SOFT_HIGH = {"lr", "weight_decay", "clip_norm", "epochs", "batch_size", "warmup_epochs", "step_epochs", "restart_epochs"}
"""Params whose ``high`` bounds the search space only (a larger value is unwise, not invalid):
the trainer itself accepts larger values, e.g. a huge ``lr`` that makes the loss diverge."""


def _p(name: str, kind: str, low: float = -math.inf, high: float = math.inf, owner: tuple[str, frozenset[str]] | None = None, doc: str = "", choices: tuple[Any, ...] = ()) -> TrainingParam:
    return TrainingParam(name, kind, low, high, choices, owner, doc, name not in _SOFT_HIGH)


def _opt(*names: str) -> tuple[str, frozenset[str]]:
    return ("optimizer", frozenset(names))


def _sched(*names: str) -> tuple[str, frozenset[str]]:
    return ("schedule", frozenset(names))


TRAINING_SPECS: dict[str, TrainingParam] = {
    s.name: s
    for s in (
        # what is trained and how long
        _p("epochs", "int", 1, 10_000, doc="passes over the training data"),
        _p("batch_size", "int", 1, 1 << 16, doc="samples per step (the global batch with several DDP processes)"),
        # optimizer
        _p("optimizer", "choice", choices=OPTIMIZER_NAMES, doc="the optimizer"),
        _p("lr", "float", 1e-8, 10.0, doc="(initial) learning rate; the peak rate of onecycle"),
        _p("weight_decay", "float", 0.0, 1.0, doc="L2 penalty (decoupled for adamw)"),
        _p("clip_norm", "float", 0.0, 1e6, doc="clip the gradients' global norm to this (0: no clipping)"),
        _p("momentum", "float", 0.0, 0.9999, _opt("sgd", "rmsprop"), "momentum of sgd (default 0.9) or rmsprop (default 0)"),
        _p("nesterov", "bool", owner=_opt("sgd"), doc="Nesterov momentum for sgd (needs momentum > 0)"),
        _p("beta1", "float", 0.0, 0.9999, _opt("adam", "adamw"), "Adam's first-moment decay"),
        _p("beta2", "float", 0.0, 0.99999, _opt("adam", "adamw"), "Adam's second-moment decay"),
        _p("amsgrad", "bool", owner=_opt("adam", "adamw"), doc="the AMSGrad variant of Adam"),
        _p("eps", "float", 1e-12, 0.1, _opt("adagrad", "rmsprop", "adam", "adamw"), "denominator term"),
        _p("alpha", "float", 0.0, 0.9999, _opt("rmsprop"), "RMSprop's smoothing constant"),
        _p("centered", "bool", owner=_opt("rmsprop"), doc="centered RMSprop"),
        _p("lr_decay", "float", 0.0, 1.0, _opt("adagrad"), "Adagrad's learning-rate decay"),
        # learning-rate schedule (durations in epochs; schedules step after every batch)
        _p("schedule", "choice", choices=SCHEDULE_NAMES, doc="the learning-rate schedule"),
        _p("warmup_epochs", "float", 0.0, 10_000, doc="linear warm-up from lr/100 to lr before the schedule"),
        _p("lr_find", "bool", doc="pick lr with a learning-rate range test before training"),
        _p("lr_find_rule", "choice", choices=("min10", "steepest"), doc="range test: the lowest loss's rate / 10, or the steepest fall of the loss"),
        _p("step_epochs", "float", 0.01, 10_000, _sched("step"), "decay every this many epochs"),
        _p("step_gamma", "float", 1e-6, 1.0, _sched("step"), "factor of each step decay"),
        _p("exp_gamma", "float", 1e-6, 1.0, _sched("exponential"), "decay factor per epoch"),
        _p("min_lr_factor", "float", 0.0, 1.0, _sched("cosine", "cosine_restarts"), "cosine's lowest rate, as a share of lr"),
        _p("restart_epochs", "float", 0.01, 10_000, _sched("cosine_restarts"), "epochs to the first restart"),
        _p("restart_mult", "int", 1, 100, _sched("cosine_restarts"), "each cycle is this many times longer"),
        _p("plateau_factor", "float", 1e-6, 0.999, _sched("plateau"), "multiply lr by this when the validation error stalls"),
        _p("plateau_patience", "int", 0, 10_000, _sched("plateau"), "epochs without improvement before reducing"),
        _p("onecycle_pct", "float", 0.01, 0.99, _sched("onecycle"), "share of the steps spent increasing lr"),
        _p("onecycle_div", "float", 1.0, 1e6, _sched("onecycle"), "onecycle starts at lr / this"),
        _p("hypergrad_beta", "float", 0.0, 1.0, _sched("hypergradient"), "hypergradient step size (multiplicative rule)"),
        _p("bold_up", "float", 1.0, 10.0, _sched("bold_driver"), "bold driver: lr factor when the held-out loss fell"),
        _p("bold_down", "float", 0.01, 1.0, _sched("bold_driver"), "bold driver: lr factor when it rose"),
        _p("bold_every", "int", 1, 1 << 20, _sched("bold_driver"), "bold driver: steps between held-out checks"),
        # regularisation
        _p("dropout", "float", 0.0, 0.95, doc="dropout before the classifier (cnn) / after hidden layers (mlp)"),
        _p("label_smoothing", "float", 0.0, 0.99, doc="label smoothing of the cross-entropy loss"),
        _p("augment", "choice", choices=AUGMENT_NAMES, doc="random crop / horizontal flip of image batches, on the device"),
        _p("crop_padding", "int", 1, 64, ("augment", frozenset({"crop", "crop_flip"})), "pixels of zero padding of the random crop"),
    )
}
"""Every param the built-in trainer reads, by name."""

_DEFAULT_LR = {"sgd": 0.05, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001}


def _kind_problem(spec: TrainingParam, v: Any, space: bool = True) -> str | None:
    """Why ``v`` is not a valid value of ``spec`` (``None`` when it is)."""
    if spec.kind == "bool":
        return None if isinstance(v, bool) else f"{spec.name} is true or false, got {v!r}"
    if spec.kind == "choice":
        if v in spec.choices and isinstance(v, str):
            return None
        return f"unknown {spec.name} {v!r}"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
        return f"{spec.name} is a number, got {v!r}"
    if spec.kind == "int" and not float(v).is_integer():
        return f"{spec.name} takes whole numbers, got {v!r}"
    if not (spec.low <= v <= (spec.high if space or spec.hard_high else math.inf)):
        neg = " (a negative rate)" if v < 0 and spec.low >= 0 and spec.kind == "float" and "epochs" not in spec.name else ""
        return f"value {v!r} of {spec.name} is outside its valid range [{spec.low:g}, {spec.high:g}]{neg}"
    return None


def _kind_fix(spec: TrainingParam) -> str:
    if spec.kind == "bool":
        return f"write {spec.name}: true / false, or {{type: categorical, choices: [false, true]}}."
    if spec.kind == "choice":
        return f"use one of: {', '.join(spec.choices)}."
    extra = " (type: int)" if spec.kind == "int" else ""
    return f"keep {spec.name} within [{spec.low:g}, {spec.high:g}]{extra}."


def check_training_value(name: str, value: Any, field: str, space: bool = True) -> None:
    """Raise :class:`ConfigError` on ``field`` when ``value`` is not valid for training param ``name``
    (``space=False``: as a trial's value, where only hard upper bounds apply)."""
    spec = TRAINING_SPECS[name]
    problem = _kind_problem(spec, value, space)
    if problem:
        raise ConfigError(field, problem + ".", _kind_fix(spec))


def _owner_text(spec: TrainingParam) -> str:
    assert spec.owner is not None
    sel, values = spec.owner
    return f"{sel} {' or '.join(sorted(values))}"


# -- the space ---------------------------------------------------------------------------------------------
def _possible_values(space: "SearchSpace", selector: str) -> list[Any]:
    from hwtune.space import CategoricalParam, FixedParam

    if selector not in space:
        return [SELECTOR_DEFAULTS[selector]]
    p = space[selector]
    if isinstance(p, CategoricalParam):
        vals = list(p.choices)
    elif isinstance(p, FixedParam):
        vals = [p.value]
    else:
        vals = []
    if p.condition is not None:  # the selector itself may be absent in some trials: then its default applies
        vals.append(SELECTOR_DEFAULTS[selector])
    return vals


def validate_training_space(space: "SearchSpace", field: str = "space") -> None:
    """Check the space's training params against :data:`TRAINING_SPECS` (see the module docstring).

    Params the trainer does not know are left to the caller (a model family knows its own).

    Raises:
        ConfigError: naming ``<field>.<param>``, the problem and the fix.
    """
    from hwtune.space import CategoricalParam, FixedParam, FloatParam, IntParam

    for name, p in space.items():
        spec = TRAINING_SPECS.get(name)
        if spec is None:
            continue
        f = f"{field}.{name}"
        # kind of param and the values it can take
        if spec.kind in ("bool", "choice") and isinstance(p, (IntParam, FloatParam)):
            raise ConfigError(f, f"{name} is a {'switch' if spec.kind == 'bool' else 'choice'}, not a numeric range.", _kind_fix(spec))
        if spec.kind == "int" and isinstance(p, FloatParam):
            raise ConfigError(f, f"{name} takes whole numbers.", f"write type: int for {name}.")
        if isinstance(p, (IntParam, FloatParam)):
            values: list[Any] = [p.low, p.high]
        elif isinstance(p, CategoricalParam):
            values = list(p.choices)
        elif isinstance(p, FixedParam):
            values = [p.value]
        else:  # pragma: no cover - no other param kinds
            values = []
        for v in values:
            problem = _kind_problem(spec, v)
            if problem:
                raise ConfigError(f, problem + ".", _kind_fix(spec))
        # a condition on a choice param must name one of its values
        cond = p.condition
        if cond is not None and cond.param in SELECTOR_DEFAULTS:
            sel_spec = TRAINING_SPECS[cond.param]
            if cond.op not in ("==", "!="):
                raise ConfigError(f"{f}.condition", f"{cond.param} is a choice; '{cond.op}' does not compare choices.", f"write \"{cond.param} == '<name>'\" or '!='.")
            possible = _possible_values(space, cond.param)
            if cond.value not in sel_spec.choices:
                raise ConfigError(f"{f}.condition", f"compares {cond.param} with {cond.value!r}, which is not a known {cond.param}.", _kind_fix(sel_spec))
            if cond.value not in possible:
                raise ConfigError(
                    f"{f}.condition",
                    f"compares {cond.param} with {cond.value!r}, but {cond.param} is only ever {', '.join(map(str, possible))}.",
                    f"compare with one of {', '.join(map(str, possible))}, or add {cond.value!r} to {cond.param}'s choices.",
                )
        # a param that belongs to some optimizer / schedule / augmentation must be used by one
        if spec.owner is not None:
            sel, users = spec.owner
            active = _possible_values(space, sel)
            if cond is not None and cond.param == sel:
                active = [v for v in active if (v == cond.value) == (cond.op == "==")]
            if not any(v in users for v in active):
                first = sorted(users)[0]
                raise ConfigError(
                    f,
                    f"{name} is a param of {_owner_text(spec)}, but {sel} is {' / '.join(map(str, active))} wherever {name} is set.",
                    f"remove {name}, or set {sel} to {' or '.join(sorted(users))} (searched: add condition: \"{sel} == '{first}'\").",
                )
    # nesterov needs momentum > 0
    if "nesterov" in space and True in space["nesterov"].corners():
        if "momentum" in space and min(space["momentum"].corners()) == 0:
            raise ConfigError(f"{field}.momentum", "nesterov: true needs momentum > 0, but momentum can be 0.", "raise momentum's low above 0, or fix nesterov: false.")


# -- one trial ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingPlan:
    """The training params of one trial, resolved with defaults and checked.

    Attributes:
        optimizer: optimizer name; ``optimizer_kwargs`` its own params (PyTorch's keyword names).
        lr: initial learning rate (the range test replaces it when ``lr_find``).
        schedule: schedule name; ``schedule_kwargs`` its params (hwtune's names, see TRAINING_SPECS).
        ignored: params present in ``params`` that this trial's choices do not read.
    """

    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    schedule_kwargs: dict[str, Any] = field(default_factory=dict)
    warmup_epochs: float = 0.0
    lr_find: bool = False
    lr_find_rule: str = "min10"
    label_smoothing: float = 0.0
    augment: str = "none"
    crop_padding: int = 2
    ignored: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Plain-data form (recorded with a trial's training settings)."""
        return {
            "optimizer": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay, "clip_norm": self.clip_norm,
            **self.optimizer_kwargs, "schedule": self.schedule, **self.schedule_kwargs, "warmup_epochs": self.warmup_epochs,
            "lr_find": self.lr_find, **({"lr_find_rule": self.lr_find_rule} if self.lr_find else {}), "label_smoothing": self.label_smoothing, "augment": self.augment,
            "epochs": self.epochs, "batch_size": self.batch_size,
        }


_SCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"step_epochs": 1.0, "step_gamma": 0.5},
    "exponential": {"exp_gamma": 0.7},
    "cosine": {"min_lr_factor": 0.0},
    "cosine_restarts": {"restart_epochs": 1.0, "restart_mult": 2, "min_lr_factor": 0.0},
    "plateau": {"plateau_factor": 0.3, "plateau_patience": 0},
    "onecycle": {"onecycle_pct": 0.3, "onecycle_div": 25.0},
    "hypergradient": {"hypergrad_beta": 0.02},
    "bold_driver": {"bold_up": 1.05, "bold_down": 0.5, "bold_every": 20},
}


def resolve_training(params: Mapping[str, Any], *, strict: bool = True, field: str = "params") -> TrainingPlan:
    """The trial's :class:`TrainingPlan` from its params (unknown names are left to the model builder).

    Args:
        params: all params of the trial.
        strict: a param of another optimizer / schedule / augmentation than the chosen one is an
            error (``True``) or ignored and listed in ``TrainingPlan.ignored`` (``False``).
        field: prefix of error fields.

    Raises:
        ConfigError: unknown optimizer or schedule, a value out of range, a param of another choice.
    """
    for name, v in params.items():
        if name in TRAINING_SPECS:
            check_training_value(name, v, f"{field}.{name}", space=False)
    chosen = {sel: params.get(sel, d) for sel, d in SELECTOR_DEFAULTS.items()}
    ignored: list[str] = []
    for name in params:
        spec = TRAINING_SPECS.get(name)
        if spec is None or spec.owner is None:
            continue
        sel, users = spec.owner
        if chosen[sel] not in users:
            if strict:
                raise ConfigError(
                    f"{field}.{name}",
                    f"{name} is a param of {_owner_text(spec)}, but {sel} is {chosen[sel]!r}.",
                    f"remove {name}, or choose {sel}: {sorted(users)[0]}.",
                )
            ignored.append(name)
    opt = chosen["optimizer"]
    kw: dict[str, Any] = {}
    if opt == "sgd":
        kw = {"momentum": float(params.get("momentum", 0.9)), "nesterov": bool(params.get("nesterov", False))}
        if kw["nesterov"] and kw["momentum"] <= 0:
            raise ConfigError(f"{field}.nesterov", "Nesterov momentum needs momentum > 0.", "set momentum above 0 or nesterov: false.")
    elif opt == "adagrad":
        kw = {"lr_decay": float(params.get("lr_decay", 0.0)), "eps": float(params.get("eps", 1e-10))}
    elif opt == "rmsprop":
        kw = {"alpha": float(params.get("alpha", 0.99)), "eps": float(params.get("eps", 1e-8)),
              "momentum": float(params.get("momentum", 0.0)), "centered": bool(params.get("centered", False))}
    else:  # adam, adamw
        kw = {"betas": (float(params.get("beta1", 0.9)), float(params.get("beta2", 0.999))),
              "eps": float(params.get("eps", 1e-8)), "amsgrad": bool(params.get("amsgrad", False))}
    sched = chosen["schedule"]
    skw = {k: params.get(k, d) for k, d in _SCHEDULE_DEFAULTS[sched].items()}
    return TrainingPlan(
        epochs=int(params.get("epochs", 5)),
        batch_size=int(params.get("batch_size", 64)),
        optimizer=opt,
        lr=float(params.get("lr", _DEFAULT_LR[opt])),
        weight_decay=float(params.get("weight_decay", 0.01 if opt == "adamw" else 0.0)),
        clip_norm=float(params.get("clip_norm", 0.0)),
        optimizer_kwargs=kw,
        schedule=sched,
        schedule_kwargs=skw,
        warmup_epochs=float(params.get("warmup_epochs", 0.0)),
        lr_find=bool(params.get("lr_find", False)),
        lr_find_rule=str(params.get("lr_find_rule", "min10")),
        label_smoothing=float(params.get("label_smoothing", 0.0)),
        augment=chosen["augment"],
        crop_padding=int(params.get("crop_padding", 2)),
        ignored=tuple(ignored),
    )
