"""Tests for the physical systems in :mod:`flowsim.systems.physics`."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import flowsim
from flowsim.errors import ParameterError
from flowsim.systems import physics

SYSTEMS = [
    "pendulum",
    "duffing",
    "van_der_pol",
    "lorenz63",
    "lorenz96",
    "kepler",
    "double_pendulum",
]
CONSERVATIVE = ["pendulum", "kepler", "double_pendulum"]
DTYPES = [torch.float64, torch.float32]


def _integrate(system, x0, p=None, t_end=None, n_eval=11, rtol=1e-12, atol=1e-12, method="DOP853"):
    """Solve a batch of initial states as one flattened scipy problem; return ``(batch, time, dim)``.

    The right-hand side is the system's own torch ``rhs`` evaluated in float64.
    """
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    batch, dim = x0.shape
    p = system.params_tensor(p, batch)
    t_end = system.timescale if t_end is None else t_end

    def f(t, y):
        x = torch.from_numpy(y).reshape(batch, dim)
        return system.rhs(torch.tensor(t, dtype=torch.float64), x, p).numpy().ravel()

    t_eval = np.linspace(0.0, t_end, n_eval)
    sol = solve_ivp(f, (0.0, t_end), x0.numpy().ravel(), method=method, t_eval=t_eval,
                    rtol=rtol, atol=atol)
    assert sol.success, sol.message
    return torch.from_numpy(sol.y.T.reshape(n_eval, batch, dim).swapaxes(0, 1).copy()), p


def _in_box(system, x):
    box = torch.tensor(system.initial_box, dtype=x.dtype)
    return bool(((x >= box[:, 0]) & (x <= box[:, 1])).all())


# ------------------------------------------------------------------------------ common checks
@pytest.mark.parametrize("name", SYSTEMS)
def test_registered_with_metadata(name):
    system = flowsim.get_system(name)
    assert name in flowsim.list_systems()
    assert type(system).__name__ in physics.__all__
    assert system.dim == len(system.state_names) == len(system.units) == len(system.initial_box)
    assert len(system.default_x0) == system.dim
    assert math.isfinite(system.timescale) and system.timescale > 0
    assert system.description and system.citation
    assert type(system).__doc__ and "math::" in type(system).__doc__
    assert isinstance(system.autonomous, bool) and isinstance(system.stiff, bool)
    assert system.positive is False
    assert len(system.invariant_names) == (name in CONSERVATIVE) + (name == "kepler")
    for q in system.parameters:
        assert q.prior[0] <= q.default <= q.prior[1]
        q.check(q.prior[0])
        q.check(q.prior[1])
    json.dumps(system.describe())
    assert _in_box(system, system.default_initial()[None])
    # rebuilding from constructor_kwargs gives the same system
    again = flowsim.get_system(name, **system.constructor_kwargs())
    assert again.dim == system.dim and again.defaults == system.defaults


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", SYSTEMS)
def test_rhs_shape_and_dtype(name, dtype):
    system = flowsim.get_system(name)
    x = system.sample_initial(5, generator=0, dtype=dtype)
    for t in (0.0, torch.tensor(0.7, dtype=dtype), torch.linspace(0, 1, 5, dtype=dtype)):
        for p in (None, system.sample_params(5, generator=1, dtype=dtype)):
            out = system.rhs(t, x, p)
            assert out.shape == (5, system.dim)
            assert out.dtype == dtype
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SYSTEMS)
def test_per_sample_parameters_change_only_their_row(name):
    system = flowsim.get_system(name)
    x = system.sample_initial(5, generator=3)
    p = system.default_params(5)
    t = torch.tensor(0.3, dtype=torch.float64)
    base = system.rhs(t, x, p)
    assert torch.equal(base, system.rhs(t, x))
    for j, q in enumerate(system.parameters):
        p2 = p.clone()
        p2[2, j] = q.prior[1] if q.prior[1] != q.default else q.prior[0]
        out = system.rhs(t, x, p2)
        others = [0, 1, 3, 4]
        assert torch.equal(out[others], base[others]), q.name
        assert not torch.allclose(out[2], base[2]), f"{name}: {q.name} has no effect"
        assert torch.allclose(out[2:3], system.rhs(t, x[2:3], p2[2:3]), rtol=1e-14, atol=0)
        # a dict override equals the same value broadcast as a tensor
        shared = system.rhs(t, x, {q.name: float(p2[2, j])})
        assert torch.allclose(shared[2], out[2], rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", SYSTEMS)
def test_rhs_is_differentiable(name):
    system = flowsim.get_system(name, n=6) if name == "lorenz96" else flowsim.get_system(name)
    x = system.sample_initial(2, generator=4).requires_grad_(True)
    p = system.sample_params(2, generator=5).requires_grad_(True)
    t = torch.tensor([0.2, 1.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, x, p: system.rhs(t, x, p), (t, x, p))
    # the inputs are not modified in place
    x0 = x.detach().clone()
    system.rhs(t, x, p).sum().backward()
    assert torch.equal(x.detach(), x0)


@pytest.mark.parametrize("name", SYSTEMS)
def test_sample_initial_deterministic_and_in_box(name):
    system = flowsim.get_system(name)
    a = system.sample_initial(256, generator=123)
    b = system.sample_initial(256, generator=123)
    c = system.sample_initial(256, generator=124)
    g = torch.Generator().manual_seed(123)
    assert torch.equal(a, b)
    assert torch.equal(a, system.sample_initial(256, generator=g))
    assert not torch.equal(a, c)
    assert a.shape == (256, system.dim) and a.dtype == torch.float64
    assert _in_box(system, a)
    f32 = system.sample_initial(8, generator=123, dtype=torch.float32)
    assert f32.dtype == torch.float32
    assert torch.allclose(f32.double(), a[:8], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", CONSERVATIVE)
def test_invariants_conserved(name):
    system = flowsim.get_system(name)
    x0 = torch.cat([system.default_initial()[None], system.sample_initial(3, generator=7)])
    for p in (None, system.sample_params(4, generator=8)):
        traj, pt = _integrate(system, x0, p)
        inv = system.invariants(traj, pt)
        assert set(inv) == set(system.invariant_names)
        for key, val in inv.items():
            assert val.shape == traj.shape[:2]
            ref = val[:, :1]
            rel = ((val - ref).abs() / ref.abs().clamp_min(1e-2)).max().item()
            assert rel <= 1e-8, f"{name}.{key} drifts by {rel:.2e}"


@pytest.mark.parametrize("name", SYSTEMS)
def test_trajectories_from_box_stay_bounded(name):
    system = flowsim.get_system(name)
    x0 = system.sample_initial(6, generator=11)
    p = system.sample_params(6, generator=12)
    traj, _ = _integrate(system, x0, p, t_end=3 * system.timescale, n_eval=61, rtol=1e-7,
                         atol=1e-9, method="RK45" if name != "van_der_pol" else "LSODA")
    box = torch.tensor(system.initial_box, dtype=torch.float64)
    scale = (box[:, 1] - box[:, 0]).abs().max()
    assert torch.isfinite(traj).all()
    assert traj.abs().max() < 5 * scale
    if name in ("pendulum", "double_pendulum"):  # below the separatrix: no arm flips over
        n_angles = 1 if name == "pendulum" else 2
        assert traj[..., :n_angles].abs().max() < math.pi


# ------------------------------------------------------------------------------ pendulum
def test_pendulum_values_and_separatrix():
    pend = flowsim.get_system("pendulum")
    assert pend.param_names == ("g", "L")
    assert pend.defaults == {"g": 9.81, "L": 1.0}
    assert pend.timescale == pytest.approx(2 * math.pi / math.sqrt(9.81))
    assert flowsim.get_system("pendulum", L=4.0).timescale == pytest.approx(2 * pend.timescale)
    x = torch.tensor([[0.5, 0.2]], dtype=torch.float64)
    assert torch.allclose(pend.rhs(0.0, x), torch.tensor([[0.2, -9.81 * math.sin(0.5)]]).double())
    # every box state at every prior corner is below the separatrix E = 2 g L
    x = pend.sample_initial(2000, generator=0)
    for g in pend.parameters[0].prior:
        for L in pend.parameters[1].prior:
            energy = pend.invariants(x, {"g": g, "L": L})["energy"]
            assert (energy < 2 * g * L).all()


# ------------------------------------------------------------------------------ duffing
def test_duffing_depends_on_time():
    duff = flowsim.get_system("duffing")
    assert duff.autonomous is False
    assert duff.defaults == {"delta": 0.3, "alpha": -1.0, "beta": 1.0, "gamma": 0.5, "omega": 1.2}
    assert duff.timescale == pytest.approx(2 * math.pi / 1.2)
    x = duff.sample_initial(5, generator=0)
    b0, b1 = duff.rhs(0.0, x), duff.rhs(1.0, x)
    assert torch.equal(b0[:, 0], b1[:, 0])
    expected = 0.5 * (math.cos(1.2) - 1.0)
    assert torch.allclose(b1[:, 1] - b0[:, 1], torch.full((5,), expected, dtype=torch.float64))
    # per-row times broadcast against the batch
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    rows = duff.rhs(t, x)
    for i in range(5):
        assert torch.allclose(rows[i], duff.rhs(float(t[i]), x[i : i + 1])[0], rtol=1e-15)
    # and against per-sample parameters
    p = duff.sample_params(5, generator=2)
    rows = duff.rhs(t, x, p)
    for i in range(5):
        assert torch.allclose(rows[i], duff.rhs(t[i], x[i : i + 1], p[i])[0], rtol=1e-15)


# ------------------------------------------------------------------------------ van der Pol
def _measured_vdp_period(mu):
    def f(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    def crossing(t, y):
        return y[0]

    crossing.direction = 1
    sol = solve_ivp(f, (0, 8 * max(7.0, 1.7 * mu)), [2.0, 0.0], method="LSODA", rtol=1e-10,
                    atol=1e-10, events=crossing)
    te = sol.t_events[0]
    return te[-1] - te[-2]


def test_van_der_pol_stiffness_and_timescale():
    vdp = flowsim.get_system("van_der_pol")
    assert vdp.defaults == {"mu": 1.0}
    assert vdp.stiff is False
    assert vdp.timescale == pytest.approx(6.6633, abs=1e-3)
    assert flowsim.get_system("van_der_pol", mu=1000).stiff is True
    assert flowsim.get_system("van_der_pol", mu=100).stiff is True
    assert flowsim.get_system("van_der_pol", mu=99).stiff is False
    assert vdp.with_params(mu=1000).stiff is True
    assert vdp.with_params(mu=1000).with_params(mu=2.0).stiff is False
    assert flowsim.get_system("van_der_pol", mu=1000).describe()["stiff"] is True
    big = flowsim.get_system("van_der_pol", mu=1000).timescale
    assert big == pytest.approx((3 - 2 * math.log(2)) * 1000, rel=0.01)
    mus = [0.0, 0.3, 1.0, 2.5, 6.0, 12.0, 40.0, 49.9, 50.0, 50.1, 80.0, 200.0, 1e4]
    ts = [flowsim.get_system("van_der_pol", mu=m).timescale for m in mus]
    assert ts[0] == pytest.approx(2 * math.pi, rel=1e-4)
    assert all(a < b for a, b in zip(ts, ts[1:]))
    for mu in (2.5, 6.0):
        measured = _measured_vdp_period(mu)
        assert flowsim.get_system("van_der_pol", mu=mu).timescale == pytest.approx(measured, rel=5e-3)


# ------------------------------------------------------------------------------ Lorenz-63
def test_lorenz63_values():
    lor = flowsim.get_system("lorenz63")
    assert lor.defaults == pytest.approx({"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0})
    assert physics.Lorenz63.lyapunov_exponent == pytest.approx(0.9056)
    assert lor.timescale == pytest.approx(1 / 0.9056)
    x = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[0.0, 26.0, 1.0 - 8.0 / 3.0]], dtype=torch.float64)
    assert torch.allclose(lor.rhs(0.0, x), expected)


# ------------------------------------------------------------------------------ Lorenz-96
def test_lorenz96_dimension_follows_n():
    l96 = flowsim.get_system("lorenz96")
    assert l96.dim == 40 and l96.defaults == {"F": 8.0}
    assert physics.Lorenz96.lyapunov_exponent == pytest.approx(1.68)
    s10 = flowsim.get_system("lorenz96", n=10)
    assert s10.dim == 10
    assert s10.state_names == tuple(f"x{i}" for i in range(10))
    assert len(s10.initial_box) == len(s10.default_x0) == len(s10.units) == 10
    assert s10.constructor_kwargs()["n"] == 10
    assert s10.describe()["constructor"] == {"n": 10}
    five = s10.with_params(F=5.0)
    assert flowsim.get_system("lorenz96", n=10).with_params(F=5.0).dim == 10
    assert five.defaults == {"F": 5.0}
    assert five.default_x0 == (5.01,) + (5.0,) * 9
    assert flowsim.get_system(five).dim == 10
    assert flowsim.get_system("lorenz96", **five.constructor_kwargs()).dim == 10
    assert physics.Lorenz96(n=7, F=3.0).dim == 7
    assert "n=10" in repr(five)
    for bad in (2, 3, 4.5, True):
        with pytest.raises(ParameterError):
            flowsim.get_system("lorenz96", n=bad)
    with pytest.raises(ParameterError):
        flowsim.get_system("lorenz96", n=10, G=1.0)


def test_lorenz96_matches_loop_reference():
    s = flowsim.get_system("lorenz96", n=10)
    x = s.sample_initial(3, generator=0)
    p = s.sample_params(3, generator=1)
    out = s.rhs(0.0, x, p)
    n = 10
    ref = torch.empty_like(x)
    for b in range(3):
        for i in range(n):
            ref[b, i] = (x[b, (i + 1) % n] - x[b, i - 2]) * x[b, i - 1] - x[b, i] + p[b, 0]
    assert torch.allclose(out, ref, rtol=1e-14, atol=1e-12)
    # the rest state x_i = F is an equilibrium
    rest = torch.full((1, n), 8.0, dtype=torch.float64)
    assert torch.allclose(s.rhs(0.0, rest), torch.zeros(1, n, dtype=torch.float64))


# ------------------------------------------------------------------------------ Kepler
def _pericentre(kep, x, gm):
    inv = kep.invariants(x, {"GM": gm})
    energy, h = inv["energy"], inv["angular_momentum"]
    ecc = torch.sqrt((1 + 2 * energy * h**2 / gm**2).clamp_min(0.0))
    return energy, h**2 / (gm * (1 + ecc))


def test_kepler_samples_bound_orbits():
    kep = flowsim.get_system("kepler")
    assert kep.defaults == {"GM": 1.0}
    assert kep.timescale == pytest.approx(2 * math.pi)
    x = kep.sample_initial(4000, generator=0)
    energy, r_peri = _pericentre(kep, x, 1.0)
    assert (energy < 0).all()
    assert (r_peri > 0.2).all()
    semi_major = -1.0 / (2 * energy)
    lo, hi = kep.semi_major_axis_range
    assert ((semi_major > lo - 1e-9) & (semi_major < hi + 1e-9)).all()
    assert (x[:, :2].norm(dim=1) > 0.2).all()
    # both senses of rotation and all orientations occur
    h = kep.invariants(x)["angular_momentum"]
    assert (h > 0).any() and (h < 0).any()
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert angle.min() < -3.0 and angle.max() > 3.0
    # evolved with any GM in the prior the orbits stay bound, away from the origin
    for gm in kep.parameters[0].prior:
        energy, r_peri = _pericentre(kep, x, gm)
        assert (energy < 0).all() and (r_peri > 0.2).all()


def test_kepler_default_orbit_is_periodic():
    kep = flowsim.get_system("kepler")
    x0 = kep.default_initial()[None]
    assert kep.invariants(x0)["energy"].item() == pytest.approx(-0.5)  # a = 1
    traj, _ = _integrate(kep, x0, n_eval=2)
    assert torch.allclose(traj[0, -1], x0[0], atol=1e-8)
    heavy = flowsim.get_system("kepler", GM=4.0)
    assert heavy.timescale == pytest.approx(math.pi)
    assert heavy.invariants(heavy.default_initial()[None], {"GM": 4.0})["energy"].item() == (
        pytest.approx(-2.0)
    )
    assert _in_box(heavy, heavy.sample_initial(500, generator=1))


# ------------------------------------------------------------------------------ double pendulum
def test_double_pendulum_matches_lagrangian_form():
    dp = flowsim.get_system("double_pendulum")
    assert dp.defaults == {"m1": 1.0, "m2": 1.0, "l1": 1.0, "l2": 1.0, "g": 9.81}
    assert dp.timescale == pytest.approx(2 * math.pi / math.sqrt(9.81 * (2 - math.sqrt(2))))
    x = dp.sample_initial(6, generator=0) * 2.0  # also beyond the box
    p = dp.sample_params(6, generator=1)
    out = dp.rhs(0.0, x, p)
    m1, m2, l1, l2, g = p.unbind(-1)
    th1, th2, w1, w2 = x.unbind(-1)
    d = th1 - th2
    mass = torch.stack(
        [
            torch.stack([(m1 + m2) * l1**2, m2 * l1 * l2 * torch.cos(d)], -1),
            torch.stack([m2 * l1 * l2 * torch.cos(d), m2 * l2**2], -1),
        ],
        -2,
    )
    force = torch.stack(
        [
            -m2 * l1 * l2 * w2**2 * torch.sin(d) - (m1 + m2) * g * l1 * torch.sin(th1),
            m2 * l1 * l2 * w1**2 * torch.sin(d) - m2 * g * l2 * torch.sin(th2),
        ],
        -1,
    )
    acc = torch.linalg.solve(mass, force)
    assert torch.allclose(out[:, 2:], acc, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[:, :2], x[:, 2:])


def test_double_pendulum_box_below_flip_energy():
    dp = flowsim.get_system("double_pendulum")
    x = dp.sample_initial(2000, generator=0)
    priors = [q.prior for q in dp.parameters]
    corners = torch.tensor(list(itertools.product(*priors)), dtype=torch.float64)
    assert corners.shape == (32, 5)
    for p in corners:
        m1, m2, l1, l2, g = p.tolist()
        saddle = -(m1 + m2) * g * l1 + m2 * g * l2  # potential at (theta1, theta2) = (0, pi)
        assert (dp.invariants(x, p)["energy"] < saddle).all()
