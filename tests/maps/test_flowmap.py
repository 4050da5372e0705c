"""The FlowMap contract: exact identity, shapes, per-sample times, JVP, odeint layout, bad input."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim import FlowMap


@pytest.fixture(scope="module")
def fm():
    torch.manual_seed(0)
    m = FlowMap("fitzhugh_nagumo", width=32, depth=2)
    with torch.no_grad():  # non-trivial weights (the head starts at zero)
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("name", ["fitzhugh_nagumo", "duffing", "robertson", "hodgkin_huxley"])
def test_identity_is_exact(name):
    m = FlowMap(name, width=16, depth=1, tangent=name != "hodgkin_huxley")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    x = m.system.sample_initial(64, generator=0).float()
    s = torch.rand(64) * 3
    out = m.jump(x, s, s)
    assert torch.equal(out, x)


def test_per_sample_times_and_params(fm):
    sys = fm.system
    x = sys.sample_initial(6, generator=1).float()
    p = sys.sample_params(6, generator=2).float()
    t = torch.linspace(0.5, 20, 6)
    batch = fm.jump(x, 0.0, t, p)
    for i in range(6):
        one = fm.jump(x[i:i + 1], 0.0, t[i:i + 1], p[i])
        assert torch.allclose(batch[i], one[0], atol=1e-6)


def test_velocity_matches_finite_difference(fm):
    sys = fm.system
    x = sys.sample_initial(8, generator=3).float().double()
    m = FlowMap("fitzhugh_nagumo", width=32, depth=2, dtype=torch.float64)
    m.load_state_dict(fm.state_dict())
    p = sys.default_params(8)
    s = torch.zeros(8, dtype=torch.float64)
    t = torch.full((8,), 3.0, dtype=torch.float64)
    _, jvp = torch.func.jvp(lambda tt: m(s, tt, x, p), (t,), (torch.ones_like(t),))
    eps = 1e-6
    fd = (m(s, t + eps, x, p) - m(s, t - eps, x, p)) / (2 * eps)
    assert torch.allclose(jvp, fd, rtol=1e-6, atol=1e-9)


def test_odeint_layout_and_composition(fm):
    x0 = fm.system.sample_initial(4, generator=4).float()
    t = torch.linspace(0, 60, 4)
    out = fm.odeint(x0, t, max_jump=10.0)
    assert out.shape == (4, 4, 2)  # (time, batch, dim) like torchdiffeq
    assert torch.equal(out[0], x0)
    # by hand: two jumps of 10 per interval of 20
    x = x0
    for k in range(3):
        a = t[k]
        x = fm.jump(x, a, a + 10.0)
        x = fm.jump(x, a + 10.0, t[k + 1])
    assert torch.allclose(out[-1], x, atol=1e-5)


@pytest.mark.slow
def test_compiles_and_float64():
    m = FlowMap("lotka_volterra", width=16, depth=2, dtype=torch.float64)
    x = m.system.sample_initial(5, generator=0)
    out = m.jump(x, 0.0, 1.0)
    assert out.dtype == torch.float64
    if hasattr(torch, "compile"):
        try:
            compiled = torch.compile(m.forward)
            s, t = torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
            y = compiled(s, t, x, m.system.default_params(5))
        except Exception as err:  # pragma: no cover - no compiler toolchain
            pytest.skip(f"torch.compile unavailable here: {err}")
        assert torch.allclose(y, out)


@pytest.mark.parametrize(
    "call, err",
    [
        (lambda m, x: m.jump(x[:, :1], 0.0, 1.0), flowsim.ShapeError),
        (lambda m, x: m.jump(x.double(), 0.0, 1.0), flowsim.ShapeError),
        (lambda m, x: m.jump(x * float("nan"), 0.0, 1.0), flowsim.ShapeError),
        (lambda m, x: m.jump(x, 1.0, 0.0), flowsim.TimeGridError),
        (lambda m, x: m.jump(x, 0.0, torch.ones(3)), flowsim.ShapeError),
        (lambda m, x: m.jump(x, 0.0, 1.0, {"nope": 1.0}), flowsim.ParameterError),
        (lambda m, x: m.jump(x, 0.0, 1.0, {"eps": 5.0}), flowsim.ParameterError),
        (lambda m, x: m.jump(x, 0.0, 1.0, torch.ones(5, 2)), flowsim.ShapeError),
        (lambda m, x: m.odeint(x, torch.tensor([0.0, 2.0, 1.0])), flowsim.TimeGridError),
    ],
)
def test_bad_input(fm, call, err):
    x = fm.system.sample_initial(5, generator=0).float()
    with pytest.raises(err):
        call(fm, x)


def test_extrapolation_allowed_on_request(fm):
    x = fm.system.sample_initial(2, generator=0).float()
    out = fm.jump(x, 0.0, 1.0, {"eps": 0.2}, allow_extrapolation=True)
    assert out.shape == (2, 2)


def test_param_range_default_prior_and_dict():
    sys_ = flowsim.get_system("fitzhugh_nagumo")
    d = sys_.default_params()
    fixed = flowsim.FlowMap(sys_, width=8, depth=1, param_range="default")
    lo, hi = fixed.param_transform.low, fixed.param_transform.high
    assert torch.equal(lo, hi) and torch.allclose(lo.double(), d, rtol=1e-7)
    x = torch.zeros(2, 2)
    fixed.jump(x, 0.0, 1.0)  # defaults are inside
    with pytest.raises(flowsim.ParameterError):
        fixed.jump(x, 0.0, 1.0, d * 1.1)
    name = sys_.param_names[0]
    some = flowsim.FlowMap(sys_, width=8, depth=1, param_range={name: (0.5, 0.6)})
    assert float(some.param_transform.low[0]) == 0.5
    assert float(some.param_transform.high[0]) == pytest.approx(0.6, rel=1e-7)
    prior = flowsim.FlowMap(sys_, width=8, depth=1)
    assert torch.equal(some.param_transform.low[1:], prior.param_transform.low[1:])
    for bad in ("everything", {"nope": 1.0}, {name: (2.0, 1.0)}, {name: "x"}, 3):
        with pytest.raises(flowsim.ConfigError):
            flowsim.FlowMap(sys_, width=8, depth=1, param_range=bad)


def test_jump_scales_features_and_round_trip(tmp_path):
    from flowsim.maps import FourierEmbedding

    emb = FourierEmbedding(2, n_scales=4, tau_min=1e-3)
    u = torch.tensor([-0.5, 0.0, 1e-3, 0.5])
    f = emb(u)
    assert f.shape == (4, emb.out_features) and emb.out_features == 1 + 4 + 4
    decay = f[:, -4:]
    assert bool((decay[1] == 0).all()) and bool((decay.abs() <= 1).all())
    torch.testing.assert_close(decay[0], -decay[3])  # odd in the jump: backward maps see the sign
    assert float(decay[2, 0]) == pytest.approx(1 - torch.exp(torch.tensor(-1.0)).item(), rel=1e-5)
    fm = FlowMap("van_der_pol", width=16, depth=2, jump_scales=3)
    assert fm.config.jump_scales == 3
    x = torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    before = fm.jump(x, 0.0, 0.3)
    flowsim.save(fm, tmp_path / "m")
    torch.testing.assert_close(flowsim.load(tmp_path / "m").jump(x, 0.0, 0.3), before)
    for bad in (-1, 2.5, True):
        with pytest.raises(flowsim.ConfigError, match="jump_scales"):
            FlowMap("van_der_pol", width=8, depth=1, jump_scales=bad)


def _identity_holds_when_perturbed(fm):
    """Perturb every weight; ``X(s, s, x) = x`` must still hold exactly. Returns the states."""
    x = fm.system.sample_initial(32, generator=0).float()
    with torch.no_grad():
        for q in fm.parameters():
            q.add_(0.3 * torch.randn_like(q))
    s = torch.rand(32)
    assert torch.equal(fm.jump(x, s, s), x)
    return x


def test_decay_start_state_fades_and_round_trips(tmp_path):
    """``decay=True``: ``z_out = z e^{-h r} + h w`` in normalised coordinates, so the identity
    stays exact, a fast rate forgets the start state, and the option survives save/load."""
    fm = FlowMap("fitzhugh_nagumo", width=16, depth=2, decay=True)
    assert fm.config.decay and fm.net.head.out_features == 2 * fm.config.dim
    x = _identity_holds_when_perturbed(fm)
    with torch.no_grad():  # w = 0 and a huge rate: every start lands on the transform's centre
        fm.net.head.weight.zero_()
        fm.net.head.bias.zero_()
        fm.net.head.bias[fm.config.dim:] = 30.0
    out = fm.jump(x, 0.0, 0.5 * fm.config.timescale)
    centre = fm.state_transform.decode(torch.zeros(1, fm.config.dim))
    torch.testing.assert_close(out, centre.expand_as(out))
    with torch.no_grad():  # zero rate (a very negative log-rate): the plain map ``z + h w``
        fm.net.head.bias[fm.config.dim:] = -60.0
    torch.testing.assert_close(fm.jump(x, 0.0, 3.0), x)
    with torch.no_grad():
        fm.net.head.bias.add_(torch.linspace(-1, 1, 2 * fm.config.dim))
    before = fm.jump(x, 0.0, 3.0)
    flowsim.save(fm, tmp_path / "m")
    back = flowsim.load(tmp_path / "m")
    assert back.config.decay
    torch.testing.assert_close(back.jump(x, 0.0, 3.0), before)
    with pytest.raises(flowsim.ConfigError, match="tangent=True and decay=True"):
        FlowMap("fitzhugh_nagumo", width=8, depth=1, tangent=True, decay=True)
    # the default: on, except with the vector field built in
    assert FlowMap("fitzhugh_nagumo", width=8, depth=1).config.decay
    assert not FlowMap("fitzhugh_nagumo", width=8, depth=1, tangent=True).config.decay
    assert not FlowMap("fitzhugh_nagumo", width=8, depth=1, backward=True).config.decay
    with pytest.raises(flowsim.ConfigError, match="backward=True and decay=True"):
        FlowMap("fitzhugh_nagumo", width=8, depth=1, backward=True, decay=True)
    # a string or number is refused, not read as truthy ("false" would turn the decay on)
    for flag, bad in (("decay", "false"), ("decay", 0), ("tangent", "yes"), ("backward", 1)):
        with pytest.raises(flowsim.ConfigError, match=f"{flag} must be True or False"):
            FlowMap("fitzhugh_nagumo", width=8, depth=1, **{flag: bad})


def test_decay_rate_is_capped_so_zero_jumps_stay_finite():
    """A network pushing its log-rate far up (as a stiff Van der Pol run did) must not give
    ``0 · ∞ = NaN`` at zero jumps, in the output or its gradient."""
    fm = FlowMap("van_der_pol", width=8, depth=1, decay=True)
    with torch.no_grad():
        fm.net.head.bias[fm.config.dim:] = 200.0  # e^196 overflows float32
    x = torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    s = torch.zeros(2)
    t = torch.tensor([0.0, 5.0])
    out = fm(s, t, x, fm.system.default_params(2).float())
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.equal(out[0], x[0])
    assert all(torch.isfinite(q.grad).all() for q in fm.parameters() if q.grad is not None)


def test_decay_velocity_is_the_forward_derivative():
    """``velocity`` at ``t = s`` includes the fading start's ``−r ẑ`` (the map is smooth in the
    jump there, so the physics objectives' diagonal sees what a short forward jump does)."""
    torch.manual_seed(1)
    fm = FlowMap("fitzhugh_nagumo", width=16, depth=2, decay=True, dtype=torch.float64)
    with torch.no_grad():
        for q in fm.parameters():
            q.add_(0.3 * torch.randn_like(q))
        fm.net.head.bias[fm.config.dim:] += 4.0  # rates of order one per timescale
    x = fm.system.sample_initial(8, generator=2)
    p = fm.system.default_params(8)
    v = fm.velocity(0.0, x, p)
    eps = 1e-6  # one-sided, second order: forward jumps only
    fd = (4 * fm.jump(x, 0.0, eps, p) - fm.jump(x, 0.0, 2 * eps, p) - 3 * x) / (2 * eps)
    torch.testing.assert_close(v, fd, rtol=1e-5, atol=1e-8)


def test_checkpoint_from_before_decay_loads_as_the_plain_map(tmp_path):
    """A checkpoint written before ``decay`` existed has no such key: it is the plain map. Saved
    checkpoints name their backbone; a config without the key (hand-written) means the MLP, the
    default before the residual network."""
    import json

    from flowsim.train.checkpoint import config_hash

    assert FlowMap("van_der_pol", width=8, depth=2).config.backbone == "resnet"  # the default
    fm = FlowMap("van_der_pol", width=16, depth=2, decay=False, backbone="mlp")
    with torch.no_grad():
        fm.net.head.bias.add_(0.5)
    x = torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    before = fm.jump(x, 0.0, 2.0)
    flowsim.save(fm, tmp_path / "old")
    cfg_file = tmp_path / "old" / "config.json"
    meta = json.loads(cfg_file.read_text())
    del meta["flowmap"]["decay"]  # as an older flowsim wrote it (with its own checksum)
    del meta["flowmap"]["backbone"]
    meta["integrity"]["config_sha256"] = config_hash(meta)
    cfg_file.write_text(json.dumps(meta))
    back = flowsim.load(tmp_path / "old")
    assert not back.config.decay and back.config.backbone == "mlp"
    torch.testing.assert_close(back.jump(x, 0.0, 2.0), before)


def test_relax_lands_fast_states_on_a_learned_state_and_round_trips(tmp_path):
    """``relax=True``: ``z_out = z e^{-h r} + (1 - e^{-h r}) u + h w``: the identity stays exact,
    a fast rate lands every start on ``u`` whatever it was, the option survives save/load, and
    the default follows the system's stiffness (with the decay)."""
    fm = FlowMap("fitzhugh_nagumo", width=16, depth=2, relax=True)
    d = fm.config.dim
    assert fm.config.relax and fm.net.head.out_features == 3 * d
    x = _identity_holds_when_perturbed(fm)
    with torch.no_grad():  # w = 0, a huge rate, u = (1, -2): every start lands on u
        fm.net.head.weight.zero_()
        fm.net.head.bias.zero_()
        fm.net.head.bias[d:2 * d] = 30.0
        fm.net.head.bias[2 * d:] = torch.tensor([1.0, -2.0])
    out = fm.jump(x, 0.0, 0.01 * fm.config.timescale)
    landing = fm.state_transform.decode(torch.tensor([[1.0, -2.0]]))
    torch.testing.assert_close(out, landing.expand_as(out))
    with torch.no_grad():
        fm.net.head.bias.add_(torch.linspace(-1, 1, 3 * d))
    before = fm.jump(x, 0.0, 3.0)
    flowsim.save(fm, tmp_path / "m")
    back = flowsim.load(tmp_path / "m")
    assert back.config.relax
    torch.testing.assert_close(back.jump(x, 0.0, 3.0), before)
    # the default: on for a system marked stiff, off otherwise, and never without the decay
    assert FlowMap("robertson", width=8, depth=1).config.relax
    assert FlowMap(flowsim.get_system("van_der_pol", mu=1000.0), width=8, depth=1).config.relax
    assert not FlowMap("van_der_pol", width=8, depth=1).config.relax
    assert not FlowMap("robertson", width=8, depth=1, decay=False).config.relax
    with pytest.raises(flowsim.ConfigError, match="relax=True needs decay=True"):
        FlowMap("robertson", width=8, depth=1, decay=False, relax=True)
    with pytest.raises(flowsim.ConfigError, match="relax must be True or False"):
        FlowMap("robertson", width=8, depth=1, relax="no")


def test_a_stiff_checkpoint_from_before_relax_loads_without_it(tmp_path):
    """A stiff system's decay map saved before ``relax`` existed (no such key) is the decay map
    it was trained as, although a new map of that system relaxes by default."""
    import json

    from flowsim.train.checkpoint import config_hash

    fm = FlowMap("robertson", width=8, depth=2, relax=False)
    with torch.no_grad():
        fm.net.head.bias.add_(0.5)
    x = fm.system.sample_initial(4, generator=0).float()
    before = fm.jump(x, 0.0, 2.0)
    flowsim.save(fm, tmp_path / "old")
    cfg_file = tmp_path / "old" / "config.json"
    meta = json.loads(cfg_file.read_text())
    del meta["flowmap"]["relax"]
    meta["integrity"]["config_sha256"] = config_hash(meta)
    cfg_file.write_text(json.dumps(meta))
    back = flowsim.load(tmp_path / "old")
    assert back.config.decay and not back.config.relax
    torch.testing.assert_close(back.jump(x, 0.0, 2.0), before)
