"""Tests of the biological and chemical systems in :mod:`flowsim.systems.biology`."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import flowsim
from flowsim.systems import biology

NAMES = [
    "lotka_volterra",
    "sir",
    "seir",
    "fitzhugh_nagumo",
    "hodgkin_huxley",
    "repressilator",
    "brusselator",
    "goodwin",
    "selkov",
    "robertson",
]
DIMS = {
    "lotka_volterra": 2,
    "sir": 3,
    "seir": 4,
    "fitzhugh_nagumo": 2,
    "hodgkin_huxley": 4,
    "repressilator": 6,
    "brusselator": 2,
    "goodwin": 3,
    "selkov": 2,
    "robertson": 3,
}
WITH_INVARIANTS = [n for n in NAMES if flowsim.get_system(n).invariant_names]
POSITIVE = [n for n in NAMES if flowsim.get_system(n).positive]


@functools.cache
def reference_solution(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Tight scipy solution over one timescale from ``default_x0``: ``(t, y)``, y (time, dim)."""
    sys = flowsim.get_system(name)

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))[None]
        return sys.rhs(t, x)[0].numpy()

    if sys.stiff:
        kw = {"method": "Radau", "rtol": 1e-10, "atol": 1e-14}
    else:
        kw = {"method": "DOP853", "rtol": 1e-12, "atol": 1e-12}
    t_eval = np.linspace(0.0, sys.timescale, 201)
    sol = solve_ivp(fun, (0.0, sys.timescale), np.array(sys.default_x0), t_eval=t_eval, **kw)
    assert sol.success, sol.message
    return sol.t, sol.y.T


def test_all_registered_and_exported():
    assert set(NAMES) <= set(flowsim.list_systems())
    for cls_name in biology.__all__:
        cls = getattr(biology, cls_name)
        assert flowsim.get_system(cls.name).__class__ is cls
    assert len(biology.__all__) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name):
    sys = flowsim.get_system(name)
    assert sys.dim == DIMS[name]
    assert sys.autonomous
    assert sys.stiff == (name == "robertson")
    assert len(sys.default_x0) == len(sys.initial_box) == len(sys.units) == sys.dim
    assert sys.timescale > 0 and sys.description and sys.citation
    assert sys.__doc__ and "``" in sys.__doc__  # equations in the docstring
    for (lo, hi), x0 in zip(sys.initial_box, sys.default_x0, strict=True):
        assert lo < hi and lo <= x0 <= hi
        if sys.positive:
            assert lo >= 0.0
    for q in sys.parameters:
        assert q.prior[0] < q.prior[1]
        assert q.domain[0] <= q.prior[0] <= q.default <= q.prior[1] <= q.domain[1]
        assert q.description
    json.dumps(sys.describe())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", NAMES)
def test_rhs_shape_dtype(name, dtype):
    sys = flowsim.get_system(name)
    x = sys.sample_initial(5, generator=0, dtype=dtype)
    for t in (0.0, torch.zeros(5, dtype=dtype)):
        out = sys.rhs(t, x)
        assert out.shape == (5, sys.dim)
        assert out.dtype == dtype
        assert torch.isfinite(out).all()
    p = sys.sample_params(5, generator=1, dtype=dtype)
    out = sys.rhs(0.0, x, p)
    assert out.shape == (5, sys.dim) and out.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_parameters_affect_only_their_row(name):
    sys = flowsim.get_system(name)
    x = sys.sample_initial(5, generator=2)
    p = sys.default_params(5)
    base = sys.rhs(0.0, x, p)
    for j, q in enumerate(sys.parameters):
        p2 = p.clone()
        p2[2, j] = q.prior[1] if q.prior[1] != q.default else q.prior[0]
        out = sys.rhs(0.0, x, p2)
        others = [0, 1, 3, 4]
        assert torch.equal(out[others], base[others]), q.name
        assert not torch.equal(out[2], base[2]), q.name


@pytest.mark.parametrize("name", NAMES)
def test_rhs_finite_on_initial_samples_and_differentiable(name):
    sys = flowsim.get_system(name)
    x = sys.sample_initial(1000, generator=3).requires_grad_(True)
    p = sys.sample_params(1000, generator=4).requires_grad_(True)
    out = sys.rhs(0.0, x, p)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_sample_initial_deterministic_and_in_box(name):
    sys = flowsim.get_system(name)
    a = sys.sample_initial(200, generator=7)
    b = sys.sample_initial(200, generator=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, sys.sample_initial(200, generator=8))
    box = torch.tensor(sys.initial_box, dtype=torch.float64)
    assert ((a >= box[:, 0]) & (a <= box[:, 1])).all()


@pytest.mark.parametrize("name", WITH_INVARIANTS)
def test_invariants_conserved(name):
    sys = flowsim.get_system(name)
    _, y = reference_solution(name)
    inv = sys.invariants(torch.from_numpy(y)[None])  # (1, time, dim) -> (1, time)
    assert set(inv) == set(sys.invariant_names)
    for k, v in inv.items():
        v = v[0]
        assert v.shape == (y.shape[0],)
        rel = ((v - v[0]).abs() / v[0].abs()).max().item()
        assert rel <= 1e-8, (k, rel)


@pytest.mark.parametrize("name", POSITIVE)
def test_positive_systems_stay_positive(name):
    _, y = reference_solution(name)
    assert y.min() >= -1e-12
    assert (y[1:] > 0).all()  # components starting at zero become positive at once


def test_invariants_shapes_and_per_sample_params():
    sys = flowsim.get_system("lotka_volterra")
    x = sys.sample_initial(4, generator=0)
    p = sys.sample_params(4, generator=1)
    v = sys.invariants(x, p)["V"]
    assert v.shape == (4,)
    a, b, d, g = p.unbind(-1)
    u, w = x.unbind(-1)
    torch.testing.assert_close(v, d * u - g * u.log() + b * w - a * w.log())
    traj = x[:, None, :].expand(4, 3, 2)
    assert sys.invariants(traj, p)["V"].shape == (4, 3)


@pytest.mark.parametrize(
    ("name", "point"),
    [
        ("lotka_volterra", lambda d: (d["gamma"] / d["delta"], d["alpha"] / d["beta"])),
        ("brusselator", lambda d: (d["A"], d["B"] / d["A"])),
        ("selkov", lambda d: (d["b"], d["b"] / (d["a"] + d["b"] ** 2))),
        ("sir", lambda d: (0.7, 0.0, 0.3)),
        ("seir", lambda d: (0.7, 0.0, 0.0, 0.3)),
    ],
)
def test_fixed_points(name, point):
    sys = flowsim.get_system(name)
    x = torch.tensor([point(sys.defaults)], dtype=torch.float64)
    torch.testing.assert_close(sys.rhs(0.0, x), torch.zeros_like(x), atol=1e-14, rtol=0)


def test_repressilator_symmetric_fixed_point():
    sys = flowsim.get_system("repressilator")
    d = sys.defaults
    q = brentq(lambda z: z - d["alpha"] / (1 + z ** d["n"]) - d["alpha0"], 0.0, 1e3, xtol=1e-14)
    x = torch.full((1, 6), q, dtype=torch.float64)
    torch.testing.assert_close(sys.rhs(0.0, x), torch.zeros_like(x), atol=1e-10, rtol=0)


def test_robertson_known_values():
    sys = flowsim.get_system("robertson")
    out = sys.rhs(0.0, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[-0.04, 0.04, 0.0]], dtype=torch.float64))
    # Classic reference value (Hairer & Wanner): y1(40) = 0.7158270687...
    _, y = reference_solution("robertson")
    assert abs(y[-1, 0] - 0.7158270687) < 1e-8


def _hh_reference(v: float, m: float, h: float, n: float) -> np.ndarray:
    am = 0.1 * (v + 40) / (1 - math.exp(-(v + 40) / 10))
    bm = 4 * math.exp(-(v + 65) / 18)
    ah = 0.07 * math.exp(-(v + 65) / 20)
    bh = 1 / (1 + math.exp(-(v + 35) / 10))
    an = 0.01 * (v + 55) / (1 - math.exp(-(v + 55) / 10))
    bn = 0.125 * math.exp(-(v + 65) / 80)
    i_ion = 120 * m**3 * h * (v - 50) + 36 * n**4 * (v + 77) + 0.3 * (v + 54.387)
    return np.array(
        [10 - i_ion, am * (1 - m) - bm * m, ah * (1 - h) - bh * h, an * (1 - n) - bn * n]
    )


def test_hodgkin_huxley_matches_textbook_formulas():
    sys = flowsim.get_system("hodgkin_huxley")
    states = [
        (-65.0, 0.05, 0.6, 0.32),
        (-20.0, 0.5, 0.3, 0.6),
        (30.0, 0.9, 0.1, 0.7),
        (-90.0, 0.01, 0.9, 0.1),
        (-40.3, 0.2, 0.4, 0.4),
        (-54.99, 0.1, 0.5, 0.4),
    ]
    x = torch.tensor(states, dtype=torch.float64)
    ref = np.stack([_hh_reference(*s) for s in states])
    np.testing.assert_allclose(sys.rhs(0.0, x).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_hodgkin_huxley_default_is_resting_state():
    sys = flowsim.get_system("hodgkin_huxley", I_ext=0.0)
    out = sys.rhs(0.0, sys.default_initial()[None])[0]
    assert out.abs().max() < 1e-3  # default_x0 is rounded to 4 digits


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("v0", [-40.0, -55.0])
def test_hodgkin_huxley_removable_singularities(v0, dtype):
    sys = flowsim.get_system("hodgkin_huxley")
    x = torch.tensor([[v0, 0.1, 0.5, 0.4]], dtype=dtype, requires_grad=True)
    p = sys.default_params(1, dtype=dtype).requires_grad_(True)
    out = sys.rhs(0.0, x, p)
    assert torch.isfinite(out).all()
    jac_x, jac_p = torch.autograd.functional.jacobian(lambda a, b: sys.rhs(0.0, a, b), (x, p))
    assert torch.isfinite(jac_x).all() and torch.isfinite(jac_p).all()
    (grad_x,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    (grad2,) = torch.autograd.grad(grad_x[0, 0], x)  # second derivatives too
    assert torch.isfinite(grad2).all()
    # Continuous across the singular voltage.
    if dtype == torch.float64:
        near = x.detach().clone()
        near[0, 0] += 1e-7
        torch.testing.assert_close(sys.rhs(0.0, near), out.detach(), rtol=1e-6, atol=1e-6)
        dv = 1e-6
        lo, hi = x.detach().clone(), x.detach().clone()
        lo[0, 0] -= dv
        hi[0, 0] += dv
        fd = (sys.rhs(0.0, hi) - sys.rhs(0.0, lo))[0] / (2 * dv)
        torch.testing.assert_close(grad_x[0, 0].detach(), fd.sum(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_negative_rate_is_refused(name):
    sys = flowsim.get_system(name)
    q = next(q for q in sys.parameters if q.domain[0] >= 0.0)
    with pytest.raises(flowsim.ParameterError):
        flowsim.get_system(name, **{q.name: -1.0})
    p = sys.default_params(3)
    p[1, sys.param_names.index(q.name)] = -1.0
    with pytest.raises(flowsim.ParameterError):
        sys.rhs(0.0, sys.sample_initial(3, generator=0), p)


def test_parameter_override_changes_defaults():
    sys = flowsim.get_system("brusselator", B=4.0)
    assert sys.defaults == {"A": 1.0, "B": 4.0}
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(sys.rhs(0.0, x), torch.tensor([[-3.0, 3.0]], dtype=torch.float64))
