"""Published SBML models (tests/data/sbml, see its README) through flowsim against libroadrunner
(CVODE) at tight tolerances: the largest difference, relative to each state's largest magnitude
over the horizon, must be <= 1e-6."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import flowsim

libsbml = pytest.importorskip("libsbml", reason="SBML import needs python-libsbml: pip install flowsim[sbml]")
roadrunner = pytest.importorskip(
    "roadrunner", reason="libroadrunner, the reference SBML simulator, is not installed (dev extra)"
)

DATA = Path(__file__).resolve().parents[1] / "data" / "sbml"

#: file -> (horizon in the model's time units, absolute tolerance of both solvers). The tests use
#: horizons of a few of each model's timescales; benchmarks/sbml.py checks the natural horizons.
MODELS = {
    "BIOMD0000000002": (0.002, 1e-20),  # Edelstein 1996, nicotinic receptor (states ~1e-8)
    "BIOMD0000000003": (3.0, 1e-14),  # Goldbeter 1991, mitotic oscillator
    "BIOMD0000000004": (3.0, 1e-14),  # Goldbeter 1991, explicit inactivation
    "BIOMD0000000012": (50.0, 1e-12),  # Elowitz 2000, repressilator
    "BIOMD0000000507": (20.0, 1e-12),  # Gardner 2000, toggle switch
    "Kholodenko2000_MAPK": (500.0, 1e-12),  # Kholodenko 2000, MAPK cascade
    "Guyton1972_Angiotensin": (100.0, 1e-14),
    "Smallbone2013_Colon_Crypt_cycle": (10.0, 1e-12),
    "Waugh2006_Diabetic_Wound_Healing_TGF_B_Dynamics": (5.0, 1e-12),
    "curien": (10.0, 1e-12),
    "van_der_pol": (10.0, 1e-12),
    "feedback": (5.0, 1e-12),
    "basic_7": (50.0, 1e-14),
    "test_1": (10.0, 1e-12),
    "Test_2": (10.0, 1e-12),
    "Test_3": (10.0, 1e-12),
    "linearPathwayClosed": (50.0, 1e-12),
    "linearPathwayOpen": (10.0, 1e-12),
    "named_stoic_in_kinetic_law": (10.0, 1e-12),
}


def roadrunner_solve(path: Path, system, t: np.ndarray, atol: float) -> np.ndarray:
    """libroadrunner's states at ``t`` (concentrations or amounts as flowsim's states are)."""
    r = roadrunner.RoadRunner(str(path))
    r.integrator.relative_tolerance = 1e-12
    r.integrator.absolute_tolerance = atol
    r.integrator.maximum_num_steps = 10**6
    model = libsbml.readSBMLFromFile(str(path)).getModel()
    sel = []
    for k in system.state_names:
        s = model.getSpecies(k)
        sel.append(f"[{k}]" if s is not None and not s.getHasOnlySubstanceUnits() else k)
    r.timeCourseSelections = ["time", *sel]
    return np.asarray(r.simulate(times=[float(v) for v in t]))[:, 1:]


def scaled_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / (the state's largest |b| over the horizon)."""
    scale = np.abs(b).max(0)
    return float((np.abs(a - b).max(0) / np.where(scale > 0, scale, 1.0)).max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_libroadrunner(name):
    horizon, atol = MODELS[name]
    path = DATA / f"{name}.xml"
    system = flowsim.from_sbml(path)
    t = torch.linspace(0.0, horizon, 21, dtype=torch.float64)
    sol = flowsim.reference_solve(system, system.default_initial()[None], t, rtol=1e-10, atol=atol,
                                  max_steps=10**6)
    assert int(sol.status[0]) == 0
    ref = roadrunner_solve(path, system, t.numpy(), atol)
    err = scaled_difference(sol.x[0].numpy(), ref)
    assert err <= 1e-6, f"{name}: flowsim vs libroadrunner differ by {err:.2e} (scaled)"
    assert np.abs(ref).max() > 0  # a model that does nothing would pass trivially


def test_at_least_ten_published_models():
    readme = (DATA / "README.md").read_text()
    published = [n for n in MODELS if f"`{n}.xml`" in readme and "published" in readme.split(f"`{n}.xml`")[1]
                 .split("\n")[0]]
    assert len(published) >= 10, published
