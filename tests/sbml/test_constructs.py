"""One small SBML model per construct, written with libsbml here, against its closed-form
solution: flowsim's reference solve (dopri5, rtol 1e-10) must match to 1e-7."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

import flowsim

libsbml = pytest.importorskip("libsbml", reason="SBML import needs python-libsbml: pip install flowsim[sbml]")

T = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)


def new_model(mid: str = "m", level: int = 3, version: int = 2):
    doc = libsbml.SBMLDocument(level, version)
    m = doc.createModel()
    m.setId(mid)
    return doc, m


def compartment(m, cid="cell", size=1.0):
    c = m.createCompartment()
    c.setId(cid)
    c.setSize(size)
    c.setConstant(True)
    return c


def species(m, sid, *, comp="cell", amount=None, conc=None, hosu=False, boundary=False, constant=False):
    s = m.createSpecies()
    s.setId(sid)
    s.setCompartment(comp)
    if amount is not None:
        s.setInitialAmount(amount)
    if conc is not None:
        s.setInitialConcentration(conc)
    s.setHasOnlySubstanceUnits(hosu)
    s.setBoundaryCondition(boundary)
    s.setConstant(constant)
    return s


def parameter(m, pid, value=None, constant=True):
    p = m.createParameter()
    p.setId(pid)
    if value is not None:
        p.setValue(value)
    p.setConstant(constant)
    return p


def reaction(m, rid, formula, reactants=(), products=()):
    r = m.createReaction()
    r.setId(rid)
    r.setReversible(False)
    for sid, st in reactants:
        sr = r.createReactant()
        sr.setSpecies(sid)
        sr.setStoichiometry(st)
        sr.setConstant(True)
    for sid, st in products:
        sr = r.createProduct()
        sr.setSpecies(sid)
        sr.setStoichiometry(st)
        sr.setConstant(True)
    kl = r.createKineticLaw()
    kl.setMath(libsbml.parseL3Formula(formula))
    return r


def solve(doc, p=None, **kw):
    sys_ = flowsim.from_sbml(doc, timescale=1.0, **kw)
    x0 = sys_.default_initial()[None].expand(1 if p is None else len(p), -1)
    sol = flowsim.reference_solve(sys_, x0, T, p, rtol=1e-10, atol=1e-12)
    assert bool((sol.status == 0).all())
    return sys_, sol.x


def test_amount_species_in_a_compartment_of_volume_2():
    # A (amount, hasOnlySubstanceUnits) -> B (concentration) in V = 2: dA/dt = -k A,
    # d[B]/dt = k A / V, so A = 4 e^{-kt} and [B] = 2 (1 - e^{-kt})
    doc, m = new_model()
    compartment(m, size=2.0)
    species(m, "A", amount=4.0, hosu=True)
    species(m, "B", conc=0.0)
    parameter(m, "k", 0.7)
    reaction(m, "R", "k * A", [("A", 1)], [("B", 1)])
    k = torch.tensor([[0.7], [1.3]], dtype=torch.float64)
    sys_, x = solve(doc, k)
    assert sys_.state_names == ("A", "B") and sys_.positive
    e = torch.exp(-k * T)
    assert torch.allclose(x[..., 0], 4.0 * e, rtol=1e-7, atol=1e-10)
    assert torch.allclose(x[..., 1], 2.0 * (1.0 - e), rtol=1e-7, atol=1e-10)


def test_assignment_rule_chain_in_dependency_order():
    # c := 2 b is listed before b := 3 k; S decays at rate c: S = S0 e^{-6 k t}
    doc, m = new_model()
    compartment(m)
    species(m, "S", conc=1.5)
    parameter(m, "k", 0.2)
    parameter(m, "b", constant=False)
    parameter(m, "c", constant=False)
    for var, f in (("c", "2 * b"), ("b", "3 * k")):
        rule = m.createAssignmentRule()
        rule.setVariable(var)
        rule.setMath(libsbml.parseL3Formula(f))
    reaction(m, "R", "c * S * cell", [("S", 1)])
    k = torch.tensor([[0.2], [0.05]], dtype=torch.float64)
    sys_, x = solve(doc, k)
    assert sys_.param_names == ("k",)
    assert torch.allclose(x[..., 0], 1.5 * torch.exp(-6 * k * T), rtol=1e-7, atol=1e-12)


def test_rate_rule_with_time():
    # dx/dt = a t, x(0) = 1: x = 1 + a t^2 / 2 (a parameter as state, non-autonomous)
    doc, m = new_model()
    parameter(m, "a", 0.8)
    parameter(m, "x", 1.0, constant=False)
    rule = m.createRateRule()
    rule.setVariable("x")
    rule.setMath(libsbml.parseL3Formula("a * time"))
    sys_, x = solve(doc)
    assert not sys_.autonomous and not sys_.positive
    assert torch.allclose(x[0, :, 0], 1.0 + 0.4 * T**2, rtol=1e-9)


def test_local_parameter_shadows_a_global_one():
    doc, m = new_model()
    compartment(m)
    species(m, "S", conc=2.0)
    parameter(m, "k", 100.0)
    r = reaction(m, "R", "k * S", [("S", 1)])
    lp = r.getKineticLaw().createLocalParameter()
    lp.setId("k")
    lp.setValue(0.5)
    sys_, x = solve(doc)
    assert sys_.param_names == ("k", "R.k")  # the global and the reaction's own
    assert torch.allclose(x[0, :, 0], 2.0 * torch.exp(-0.5 * T), rtol=1e-8)
    # the local one is a parameter of its own: vary it alone
    p = torch.tensor([[100.0, 0.25]], dtype=torch.float64)
    _, x = solve(doc, p)
    assert torch.allclose(x[0, :, 0], 2.0 * torch.exp(-0.25 * T), rtol=1e-8)


def test_function_definition():
    doc, m = new_model()
    compartment(m)
    species(m, "S", conc=1.0)
    parameter(m, "k", 0.3)
    fd = m.createFunctionDefinition()
    fd.setId("mass_action")
    fd.setMath(libsbml.parseL3Formula("lambda(rate, s, rate * s)"))
    reaction(m, "R", "mass_action(k, S)", [("S", 1)])
    _, x = solve(doc)
    assert torch.allclose(x[0, :, 0], torch.exp(-0.3 * T), rtol=1e-8)


def test_piecewise():
    # zero-order outflow 1 for t < 1, then 0: S = 3 - min(t, 1)
    doc, m = new_model()
    compartment(m)
    species(m, "S", conc=3.0)
    reaction(m, "R", "piecewise(1, time < 1, 0)", [("S", 1)])
    _, x = solve(doc)
    assert torch.allclose(x[0, :, 0], 3.0 - T.clamp(max=1.0), atol=1e-7)


def test_conversion_factor_stoichiometry_boundary_and_initial_assignment():
    # A -> 2 B with B's conversion factor 0.5 (net one B per A); boundary species E stays put;
    # A(0) = 2 k by an initial assignment; the rate constant kk = 3 k follows k per sample
    doc, m = new_model()
    compartment(m)
    species(m, "A", conc=0.0)
    b = species(m, "B", conc=0.0)
    species(m, "E", conc=5.0, boundary=True)
    parameter(m, "k", 0.5)
    parameter(m, "cf", 0.5)
    parameter(m, "kk", 0.0)
    b.setConversionFactor("cf")
    for sym, f in (("A", "2 * k"), ("kk", "3 * k")):
        ia = m.createInitialAssignment()
        ia.setSymbol(sym)
        ia.setMath(libsbml.parseL3Formula(f))
    reaction(m, "R", "kk * A * E / 5", [("A", 1), ("E", 1)], [("B", 2)])
    sys_, x = solve(doc)
    assert sys_.state_names == ("A", "B") and sys_.param_names == ("k", "cf")
    e = torch.exp(-1.5 * T)
    assert torch.allclose(x[0, :, 0], 1.0 * e, rtol=1e-8)
    assert torch.allclose(x[0, :, 1], 1.0 * (1 - e), rtol=1e-7, atol=1e-12)
    f1 = sys_.rhs(0.0, torch.tensor([[1.0, 0.0]], dtype=torch.float64), {"k": 1.0})
    assert torch.allclose(f1, torch.tensor([[-3.0, 3.0]], dtype=torch.float64))  # kk = 3 k per sample


def test_priors_boxes_pickle_and_batched_vector_field():
    doc, m = new_model()
    compartment(m)
    species(m, "A", conc=2.0)
    species(m, "B", conc=0.0)
    parameter(m, "k", 0.5)
    reaction(m, "R", "k * A", [("A", 1)], [("B", 1)])
    sys_ = flowsim.from_sbml(doc, prior=2.0, initial={"A": (1.0, 3.0)}, timescale=1.0)
    assert sys_.parameters[0].prior == (0.25, 1.0)
    assert sys_.initial_box == ((1.0, 3.0), (0.0, 2.0))  # zero initial value: [0, largest]
    p = sys_.sample_params(2000, generator=0)
    assert 0.25 <= float(p.min()) and float(p.max()) <= 1.0
    assert abs(float(torch.log(p).mean()) - math.log(0.5)) < 0.03  # log-uniform: centred in log
    x = sys_.sample_initial(5, generator=1)
    out = sys_.rhs(0.0, x, p[:5])
    assert torch.allclose(out[:, 0], -p[:5, 0] * x[:, 0])
    back = pickle.loads(pickle.dumps(sys_.with_params(k=0.7)))
    assert back.defaults == {"k": 0.7} and back.initial_box == sys_.initial_box
    assert torch.equal(back.rhs(0.0, x, p[:5]), out)


def test_a_guarded_division_by_a_zero_constant_takes_the_chosen_piece():
    # v = k A (1 + piecewise(0, Kd == 0, Vm / Kd)) with Kd = Vm = 0: SBML evaluates the chosen
    # piece only (v = k A); every piece is computed here, so Vm / Kd must give nan, not raise
    doc, m = new_model()
    compartment(m)
    species(m, "A", conc=1.0)
    parameter(m, "k", 0.5)
    parameter(m, "Kd", 0.0)
    parameter(m, "Vm", 0.0)
    reaction(m, "R", "k * A * (1 + piecewise(0, Kd == 0, Vm / Kd))", [("A", 1)])
    _, x = solve(doc)
    assert torch.allclose(x[0, :, 0], torch.exp(-0.5 * T), rtol=1e-8)


def test_a_constant_species_given_as_an_amount_follows_its_compartment_per_sample():
    # boundary S, initial amount 6 in compartment c (a parameter): [S] = 6 / c for each sample;
    # d[B]/dt = k [S] c / c = k [S], so [B] = k (6 / c) t
    doc, m = new_model()
    compartment(m, "c", 2.0)
    species(m, "S", comp="c", amount=6.0, boundary=True)
    species(m, "B", comp="c", conc=0.0)
    parameter(m, "k", 0.5)
    reaction(m, "R", "k * S * c", [("S", 1)], [("B", 1)])
    c = torch.tensor([[2.0], [4.0]], dtype=torch.float64)
    sys_, x = solve(doc, c, parameters=["c"])
    assert sys_.param_names == ("c",)
    assert torch.allclose(x[..., 0], 0.5 * 6.0 / c * T, rtol=1e-8, atol=1e-12)


def test_an_initial_assignment_through_a_rule_of_parameters_follows_them_per_sample():
    # kk := 2 k (a rule), Km2 = kk (an initial assignment): A = e^{-2 k t} for each sample's k
    doc, m = new_model()
    compartment(m)
    species(m, "A", conc=1.0)
    parameter(m, "k", 0.5)
    parameter(m, "kk", constant=False)
    parameter(m, "Km2")
    rule = m.createAssignmentRule()
    rule.setVariable("kk")
    rule.setMath(libsbml.parseL3Formula("2 * k"))
    ia = m.createInitialAssignment()
    ia.setSymbol("Km2")
    ia.setMath(libsbml.parseL3Formula("kk"))
    reaction(m, "R", "Km2 * A", [("A", 1)])
    k = torch.tensor([[0.5], [1.5]], dtype=torch.float64)
    sys_, x = solve(doc, k)
    assert sys_.param_names == ("k",)
    assert torch.allclose(x[..., 0], torch.exp(-2 * k * T), rtol=1e-8)


def test_constant_pieces_keep_the_states_dtype():
    # a piecewise of two numbers under a condition on the state is a float64 (batch,) tensor;
    # the vector field answers in the states' dtype. Zero-order outflow while S > 0.5
    doc, m = new_model()
    compartment(m)
    species(m, "S", conc=3.0)
    reaction(m, "R", "piecewise(1, S > 0.5, 0)", [("S", 1)])
    sys_ = flowsim.from_sbml(doc, timescale=1.0)
    x = torch.tensor([[1.0], [0.25]], dtype=torch.float32)
    f = sys_.vector_field(torch.tensor(0.0), x, sys_.sample_params(2).float())
    assert f.dtype == torch.float32 and torch.equal(f, torch.tensor([[-1.0], [0.0]]))
    sol = flowsim.reference_solve(sys_, x, T.float(), dtype=torch.float32)
    assert sol.x.dtype == torch.float32 and bool((sol.status == 0).all())
    assert torch.allclose(sol.x[:, -1, 0], torch.tensor([0.5, 0.25]), atol=1e-3)
