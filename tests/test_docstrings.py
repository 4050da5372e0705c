"""Every public function and class documents itself with an example, and every example runs."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import flowsim

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["flowsim", "flowsim.analysis", "flowsim.data", "flowsim.train", "flowsim.systems", "flowsim.maps",
          "flowsim.solve", "flowsim.metrics", "flowsim.testing", "flowsim.steer", "flowsim.generative"]


def _public_objects():
    seen = set()
    for modname in PUBLIC:
        mod = importlib.import_module(modname)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            # the error subclasses are documented (with an example) by their base FlowsimError
            error = inspect.isclass(obj) and issubclass(obj, flowsim.FlowsimError)
            if error and obj is not flowsim.FlowsimError:
                continue
            yield f"{modname}.{name}", obj


@pytest.mark.parametrize("name,obj", list(_public_objects()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_api_has_docstring_with_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{name} has no docstring"
    assert "Examples\n--------" in doc, f"{name}: docstring has no Examples section"
    if inspect.isfunction(obj) and inspect.signature(obj).parameters:
        assert "Arguments\n---------" in doc or "Parameters\n----------" in doc, f"{name}: no Arguments"


@pytest.mark.slow
def test_docstring_examples_run():
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules",
           str(ROOT / "flowsim")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
