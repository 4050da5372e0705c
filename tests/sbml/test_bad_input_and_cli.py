"""Bad SBML input gives a clear FlowsimError and writes nothing; the CLI's --sbml paths; an SBML
system through a Dask LocalCluster of worker processes, a store and a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import flowsim
from flowsim.cli import main
from flowsim.errors import ConfigError, ParameterError, UnsupportedModelError

libsbml = pytest.importorskip("libsbml", reason="SBML import needs python-libsbml: pip install flowsim[sbml]")

DATA = Path(__file__).resolve().parents[1] / "data" / "sbml"
GOOD = DATA / "BIOMD0000000507.xml"  # the toggle switch: 2 states


def decay_doc():
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("decay")
    c = m.createCompartment()
    c.setId("cell"), c.setSize(1.0), c.setConstant(True)
    s = m.createSpecies()
    s.setId("A"), s.setCompartment("cell"), s.setInitialConcentration(1.0)
    s.setHasOnlySubstanceUnits(False), s.setBoundaryCondition(False), s.setConstant(False)
    p = m.createParameter()
    p.setId("k"), p.setValue(0.5), p.setConstant(True)
    r = m.createReaction()
    r.setId("R"), r.setReversible(False)
    sr = r.createReactant()
    sr.setSpecies("A"), sr.setStoichiometry(1), sr.setConstant(True)
    r.createKineticLaw().setMath(libsbml.parseL3Formula("k * A"))
    return doc, m


@pytest.mark.parametrize("text, match", [
    ("<sbml><model id='x'", "not valid SBML"),  # malformed XML
    ("<?xml version='1.0'?><html><body/></html>", "not valid SBML"),  # XML but not SBML
    ("<?xml version='1.0'?><sbml xmlns='http://www.sbml.org/sbml/level9/version1' level='9' version='1'>"
     "<model id='m'/></sbml>", "not valid SBML"),  # a level libsbml rejects
])
def test_unreadable_documents(text, match):
    with pytest.raises(ConfigError, match=match):
        flowsim.from_sbml(text)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="is neither an existing file nor SBML text"):
        flowsim.from_sbml(tmp_path / "nope.xml")
    with pytest.raises(ConfigError, match="is neither an existing file nor SBML text"):
        flowsim.from_sbml("this is not xml")
    with pytest.raises(ConfigError, match="is a folder, not an SBML file"):
        flowsim.from_sbml(tmp_path)
    with pytest.raises(ConfigError, match="file path, an XML string"):
        flowsim.from_sbml(42)


def test_events_and_delays_are_named():
    with pytest.raises(UnsupportedModelError, match="event RemovalACh"):
        flowsim.from_sbml(DATA / "BIOMD0000000001.xml")  # a published model with an event
    doc, m = decay_doc()
    m.getReaction(0).getKineticLaw().setMath(libsbml.parseL3Formula("k * delay(A, 1)"))
    with pytest.raises(UnsupportedModelError, match="delay in reaction R"):
        flowsim.from_sbml(doc)


@pytest.mark.parametrize("construct, match", [
    ("algebraic", "algebraic rule"), ("fast", "fast reaction R"),
    ("compartment", "variable compartment cell"),
])
def test_other_unsupported_constructs(construct, match):
    doc, m = decay_doc()
    if construct == "algebraic":
        rule = m.createAlgebraicRule()
        rule.setMath(libsbml.parseL3Formula("k - 1"))
    elif construct == "fast":
        doc, m = decay_doc()
        doc.setLevelAndVersion(3, 1, False)
        m = doc.getModel()
        m.getReaction(0).setFast(True)
    else:
        m.getCompartment(0).setConstant(False)
        rule = m.createRateRule()
        rule.setVariable("cell"), rule.setMath(libsbml.parseL3Formula("0.1"))
    with pytest.raises(UnsupportedModelError, match=match):
        flowsim.from_sbml(doc)


def test_missing_values_undefined_symbols_zero_compartments():
    doc, m = decay_doc()
    m.getSpecies(0).unsetInitialConcentration()
    with pytest.raises(ConfigError, match="no initial value for species A"):
        flowsim.from_sbml(doc)
    doc, m = decay_doc()
    m.getReaction(0).getKineticLaw().setMath(libsbml.parseL3Formula("kk * A"))
    with pytest.raises(ConfigError, match=r"undefined symbol\(s\) \['kk'\]"):
        flowsim.from_sbml(doc)
    doc, m = decay_doc()
    m.getCompartment(0).setSize(0.0)
    with pytest.raises(ConfigError, match="compartment cell has size 0"):
        flowsim.from_sbml(doc)


def test_parameter_names_and_prior_factors():
    doc, _ = decay_doc()
    with pytest.raises(ParameterError, match=r"no constant parameter or compartment \['kx'\]"):
        flowsim.from_sbml(doc, parameters=["kx"])
    for f in (1.0, 0.5, float("nan")):
        with pytest.raises(ParameterError, match="factor f must be a finite number > 1"):
            flowsim.from_sbml(doc, prior=f)
    with pytest.raises(ParameterError, match="not among"):
        flowsim.from_sbml(doc, prior={"nope": 2.0})
    sys_ = flowsim.from_sbml(doc, parameters=["cell"], prior={"cell": (0.5, 2.0)}, timescale=1.0)
    assert sys_.param_names == ("cell",) and sys_.parameters[0].prior == (0.5, 2.0)
    with pytest.raises(ParameterError, match=r"initial \['A'\]: a species' range must not reach below 0"):
        flowsim.from_sbml(doc, initial={"A": (-1.0, 2.0)}, timescale=1.0)
    assert bool((flowsim.from_sbml(doc, initial={"A": (0.0, 2.0)}, timescale=1.0)
                 .sample_initial(64, 0) >= 0).all())
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="timescale must be a positive finite number"):
            flowsim.from_sbml(doc, timescale=bad)


def test_cli_systems_simulate_info_train(tmp_path, capsys):
    assert main(["systems", "--sbml", str(GOOD)]) == 0
    out = capsys.readouterr().out
    assert "2 states" in out and "log-uniform" in out and "unsupported constructs: none" in out
    assert main(["systems", "--sbml", str(DATA / "BIOMD0000000001.xml")]) == 1
    assert "event RemovalACh" in capsys.readouterr().out
    store = tmp_path / "toggle.zarr"
    assert main(["simulate", "--sbml", str(GOOD), "--n", "6", "--t-end", "5", "--n-times", "11",
                 "--out", str(store), "--sync", "--params", "prior", "--no-progress"]) == 0
    ds = flowsim.open_store(store)
    assert ds.attrs["system"] == "MODEL1401190000" and tuple(ds.x.shape) == (6, 11, 2)
    info = json.loads(ds.attrs["system_json"])  # SBML names and units kept in the store's attrs
    assert set(info["sbml_names"]) >= {"species_1", "parameter_1"} and "sbml_units" in info
    system = flowsim.data.store_system(ds)  # rebuilt from the SBML text recorded in the store
    assert system.state_names == ("species_1", "species_2")
    assert isinstance(system, flowsim.systems.sbml.SBMLSystem)
    ckpt = tmp_path / "map"
    assert main(["train", "--store", str(store), "--steps", "30", "--max-jump", "5", "--width", "16",
                 "--depth", "2", "--out", str(ckpt), "--no-progress", "--device", "cpu"]) == 0
    fm = flowsim.load(ckpt)  # the system again from the checkpoint's SBML record
    assert fm.system.param_names == system.param_names
    assert main(["train", "--sbml", str(GOOD), "--steps", "20", "--width", "16", "--depth", "2",
                 "--out", str(tmp_path / "phys"), "--no-progress", "--device", "cpu"]) == 0


def test_cli_refuses_bad_models_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bad.zarr"
    code = main(["simulate", "--sbml", str(DATA / "BIOMD0000000001.xml"), "--n", "2", "--t-end", "1",
                 "--n-times", "3", "--out", str(out), "--sync"])
    assert code == 2 and not out.exists()
    assert "event RemovalACh" in capsys.readouterr().err
    code = main(["simulate", "lotka_volterra", "--sbml", str(GOOD), "--n", "2", "--t-end", "1",
                 "--n-times", "3", "--out", str(out), "--sync"])
    assert code == 2 and not out.exists()


def test_ensemble_over_a_local_cluster_of_worker_processes(tmp_path):
    system = flowsim.from_sbml(GOOD)
    t = torch.linspace(0.0, 5.0, 6, dtype=torch.float64)
    ds = flowsim.simulate_ensemble(system, 8, t, params="prior", store=tmp_path / "e.zarr", chunk_size=4,
                                   n_workers=2, seed=3, progress=False)
    assert int((ds.status.values == 0).sum()) == 8
    x0 = torch.as_tensor(ds.x.values[:, 0])
    ref = flowsim.reference_solve(system, x0, t, torch.as_tensor(ds.params.values))
    assert torch.allclose(torch.as_tensor(ds.x.values), ref.x, rtol=1e-6, atol=1e-9)


def test_cli_timescale_of_an_sbml_model(tmp_path, capsys):
    # the shipped repressilator's estimated timescale (0.2) is far below its period (~50): the
    # store records --timescale, and a map trained on it jumps up to it by default
    model = Path(flowsim.__file__).parent / "systems" / "sbml" / "models" / "repressilator.xml"
    common = ["--n", "8", "--t-end", "30", "--n-times", "31", "--sync", "--no-progress"]
    assert main(["simulate", "--sbml", str(model), "--timescale", "20", *common,
                 "--out", str(tmp_path / "r20.zarr")]) == 0
    assert main(["train", "--store", str(tmp_path / "r20.zarr"), "--steps", "5", "--width", "8",
                 "--depth", "1", "--out", str(tmp_path / "m20"), "--no-progress"]) == 0
    assert flowsim.load(tmp_path / "m20").max_jump == pytest.approx(20.0)
    # without it, training says how to fix the too-short jump range
    assert main(["simulate", "--sbml", str(model), *common, "--out", str(tmp_path / "r.zarr")]) == 0
    capsys.readouterr()
    assert main(["train", "--store", str(tmp_path / "r.zarr"), "--steps", "5", "--width", "8",
                 "--depth", "1", "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "need 0 < min_jump < max_jump" in err and "--timescale" in err and "--max-jump" in err
    # --timescale belongs to --sbml models only
    assert main(["simulate", "lotka_volterra", "--timescale", "3", *common,
                 "--out", str(tmp_path / "lv.zarr")]) == 2
    assert main(["train", "--store", str(tmp_path / "r20.zarr"), "--timescale", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--timescale is for --sbml models" in capsys.readouterr().err
    assert not (tmp_path / "lv.zarr").exists() and not (tmp_path / "x").exists()
