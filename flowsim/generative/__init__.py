"""Generative flow maps: learn a distribution from samples, sample it in 1–4 jumps.

A flow-matching teacher velocity ``b(t, x; c)`` (:func:`train_teacher`) defines a
probability-flow ODE from noise (``t = 0``) to data (``t = 1``); :func:`teacher_system` makes it
an :class:`~flowsim.ODESystem`, and :func:`distill` learns its flow map with the package's own
:class:`~flowsim.FlowMap` and :func:`~flowsim.fit` (Lagrangian, Eulerian/MeanFlow or semigroup
objectives with the teacher as ``b``); :func:`train_jointly` trains teacher and map in one loop.
``Teacher.save``/``.load`` and ``GenerativeFlowMap.save``/``.load`` keep them on disk. See
``docs/generative.md``.
"""

from .couplings import COUPLINGS as COUPLINGS
from .couplings import couple as couple
from .distillation import DISTILL_OBJECTIVES as DISTILL_OBJECTIVES
from .distillation import DistillConfig as DistillConfig
from .distillation import distill as distill
from .flowmap import GenerativeFlowMap as GenerativeFlowMap
from .interpolants import Interpolant as Interpolant
from .interpolants import LinearInterpolant as LinearInterpolant
from .interpolants import VPInterpolant as VPInterpolant
from .interpolants import get_interpolant as get_interpolant
from .joint import FlowMatching as FlowMatching
from .joint import train_jointly as train_jointly
from .posterior import InferenceTask as InferenceTask
from .posterior import fit_posterior as fit_posterior
from .samples import SampleSet as SampleSet
from .samples import as_samples as as_samples
from .samples import samples_from_store as samples_from_store
from .system import teacher_system as teacher_system
from .teacher import TEACHER_METHODS as TEACHER_METHODS
from .teacher import Teacher as Teacher
from .teacher import TeacherConfig as TeacherConfig
from .teacher import train_teacher as train_teacher
from .tilt import guided_sample as guided_sample
from .tilt import tilt_finetune as tilt_finetune
from .tilt import tilt_weights as tilt_weights

__all__ = [
    "COUPLINGS", "DISTILL_OBJECTIVES", "DistillConfig", "GenerativeFlowMap", "Interpolant",
    "LinearInterpolant", "SampleSet", "TEACHER_METHODS", "Teacher", "TeacherConfig", "VPInterpolant",
    "as_samples", "couple", "distill", "get_interpolant", "samples_from_store", "teacher_system",
    "train_teacher", "guided_sample", "tilt_finetune", "tilt_weights", "InferenceTask", "fit_posterior",
    "FlowMatching", "train_jointly",
]
