"""The loop of one study, its storage and resume, and study files."""

from hwtune.study._compression_check import compression_agreement
from hwtune.study._config import (
    StudyFile,
    default_study_file,
    load_study_file,
    parse_study_file,
    study_from_file,
)
from hwtune.study._keep import KEEP_MODES, ModelRecord, ModelsSummary
from hwtune.study._models import (
    KeptModel,
    as_study,
    kept_models,
    load_model,
    load_model_for,
    training_inputs,
    validation_data,
    validation_inputs,
    validation_labels,
)
from hwtune.study._records import TrialRecord
from hwtune.study._storage import DEFAULT_STORAGE, fail_dead_local_trials, open_storage
from hwtune.study._stored import stored_study
from hwtune.study._study import Study, StudySummary, TrialContext

__all__ = [
    "compression_agreement",
    "Study",
    "StudySummary",
    "TrialContext",
    "TrialRecord",
    "StudyFile",
    "load_study_file",
    "parse_study_file",
    "default_study_file",
    "study_from_file",
    "open_storage",
    "fail_dead_local_trials",
    "DEFAULT_STORAGE",
    # issue 13: the kept networks
    "KEEP_MODES",
    "KeptModel",
    "ModelRecord",
    "ModelsSummary",
    "kept_models",
    "load_model",
    "load_model_for",
    "as_study",
    "stored_study",
    "training_inputs",
    "validation_data",
    "validation_inputs",
    "validation_labels",
]
