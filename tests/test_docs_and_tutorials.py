"""The tutorials execute (nbmake, fast mode), the site's executed copies match them, and the
documentation site builds strictly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))
RENDERED = ROOT / "docs" / "tutorials"


def _code_sources(path: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_tutorials_execute(tmp_path, name):
    # one notebook per test (pytest-xdist spreads them over the workers); only the notebook
    # travels: not the generator script, nor stores left by earlier runs
    work = tmp_path / "tutorials"
    work.mkdir()
    shutil.copy2(ROOT / "tutorials" / name, work / name)
    env = {**os.environ, "FLOWSIM_TUTORIAL_FAST": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(work / name)],
                          capture_output=True, text=True, env=env, timeout=900, cwd=work)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]


def test_generated_tutorials_are_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "tutorials" / "make_tutorials.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_tutorial_has_an_executed_copy_for_the_site():
    sources = {p.name for p in TUTORIALS}
    rendered = {p.name for p in RENDERED.glob("*.ipynb")}
    assert sources - rendered == set(), "run python docs/render_tutorials.py"
    assert rendered - sources == set(), "docs/tutorials has copies of tutorials that no longer exist"


@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_executed_copy_has_the_tutorials_code_and_real_outputs(name):
    import nbformat

    assert _code_sources(RENDERED / name) == _code_sources(ROOT / "tutorials" / name), (
        f"docs/tutorials/{name} is stale: run python docs/render_tutorials.py {name[:2]}")
    nb = nbformat.read(RENDERED / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "not executed"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure in the executed copy"
    assert nb.metadata.get("flowsim", {}).get("mode") == "full", "rendered in fast mode"


def test_tutorials_are_in_the_site_nav_and_the_readme():
    nav = (ROOT / "mkdocs.yml").read_text()
    readme = (ROOT / "README.md").read_text()
    for nb in TUTORIALS:
        assert f"tutorials/{nb.name}" in nav, f"{nb.name} missing from mkdocs.yml nav"
        assert f"(tutorials/{nb.name})" in readme, f"README does not link {nb.name}"


def test_tutorial_outputs_are_stripped():
    import json

    for nb in (ROOT / "tutorials").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), nb.name


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs not installed (pip install -e '.[docs]')")
    mkdocs = str(Path(sys.executable).parent / "mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    # numpy sections render as tables (docs/griffe_flowsim.py), not as run-on paragraphs
    # with "Arguments" in them, and no Sphinx role is left as literal text
    assert not re.search(r":(class|func|meth|attr|data|mod):`", api)
    assert ">Arguments<" not in api and "Arguments\n---" not in api
    assert api.count("<table") > 100 and api.count('class="autorefs autorefs-internal"') > 100
    # xarray's text fallback stays hidden under Material's `pre` rule: one repr per Dataset
    css = (tmp_path / "site" / "stylesheets" / "flowsim.css").read_text()
    assert ".md-typeset pre.xr-text-repr-fallback" in css and "display: none" in css
    page = (tmp_path / "site" / "tutorials" / "04_ensembles_at_scale" / "index.html").read_text()
    assert "xr-text-repr-fallback" in page and "stylesheets/flowsim.css" in page


def test_griffe_extension_renames_arguments_and_rewrites_roles():
    griffe = pytest.importorskip("griffe")
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import griffe_flowsim
    finally:
        sys.path.remove(str(ROOT / "docs"))
    mod = griffe.Module("flowsim")
    text = ("Run :func:`~flowsim.fit` on a :class:`flowsim.FlowMap`.\n\n    Arguments\n    ---------\n"
            "    x:\n        A :class:`ValueError` or :meth:`Thing.go <flowsim.X.go>`.\n")
    out = griffe_flowsim.rewrite(text, mod)
    assert "    Parameters\n    ----------\n" in out and "Arguments" not in out
    assert '<autoref identifier="flowsim.fit" optional><code>fit()</code></autoref>' in out
    assert '<autoref identifier="flowsim.FlowMap" optional><code>flowsim.FlowMap</code></autoref>' in out
    assert "<code>ValueError</code>" in out and "autoref identifier=\"flowsim.ValueError" not in out
    assert '<autoref identifier="flowsim.X.go" optional><code>Thing.go</code></autoref>' in out


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if target.startswith("http"):
            continue
        assert (ROOT / target).exists(), f"README links to missing {target}"
