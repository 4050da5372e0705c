"""docs/api.md documents every public name, and no private one."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the modules whose ``__all__`` is the user API
PUBLIC = ["flowsim", "flowsim.analysis", "flowsim.data", "flowsim.train", "flowsim.systems",
          "flowsim.maps", "flowsim.solve", "flowsim.metrics", "flowsim.testing", "flowsim.steer",
          "flowsim.generative"]
#: submodules re-exported as namespaces, and names documented through their module's page
NAMESPACES = {"analysis", "data", "train", "systems", "errors", "report", "physics", "biology",
              "metrics", "testing", "solve", "maps", "steer"}


def _documented() -> set[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    return set(re.findall(r"^::: ([\w.]+)", text, flags=re.M))


def _objects(documented: set[str]) -> dict[int, set[str]]:
    """id of each documented object -> the paths it is documented under."""
    out: dict[int, set[str]] = {}
    for path in documented:
        mod, _, name = path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            try:
                obj = importlib.import_module(path)
            except ImportError:
                continue
        out.setdefault(id(obj), set()).add(path)
    return out


def test_every_public_name_is_in_the_api_reference():
    documented = _documented()
    text = (ROOT / "docs" / "api.md").read_text()
    objects = _objects(documented)
    modules_documented = {p for p in documented if p.count(".") >= 1 and p.split(".")[-1] in NAMESPACES}
    missing = []
    for modname in PUBLIC:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for name in mod.__all__:
            if name in NAMESPACES:
                continue
            obj = getattr(mod, name)
            if not callable(obj) and not isinstance(obj, type):
                if name not in text:  # constants are named in the prose of the page
                    missing.append(f"{modname}.{name}")
                continue
            if id(obj) in objects:
                continue
            home = getattr(obj, "__module__", "") or ""
            if any(home == m or home.startswith(m + ".") for m in modules_documented):
                continue  # documented with its whole module (e.g. ::: flowsim.errors)
            missing.append(f"{modname}.{name}")
    assert not missing, f"docs/api.md lacks: {missing}"


def test_api_reference_names_resolve_and_are_public():
    bad = []
    for path in _documented():
        if any(part.startswith("_") for part in path.split(".")):
            bad.append(f"{path} (private)")
            continue
        mod, _, name = path.rpartition(".")
        try:
            getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            try:
                importlib.import_module(path)
            except ImportError:
                bad.append(f"{path} (does not resolve)")
    assert not bad, bad


def test_benchmark_results_cited_in_the_docs_exist():
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    text = "\n".join(p.read_text() for p in pages)
    cited = set(re.findall(
        r"((?:benchmarks/results/)?(?:accuracy|work_precision|step_time|ensemble|robertson_torchode)"
        r"/[A-Za-z0-9_.-]+\.(?:json|png))", text))
    assert cited, "the docs cite no benchmark results"
    missing = sorted(m for m in cited if not (ROOT / "benchmarks" / "results" /
                                              m.removeprefix("benchmarks/results/")).exists())
    assert not missing, f"cited but not in benchmarks/results: {missing}"
    broken = [p.name for p in (ROOT / "docs" / "img" / "benchmarks").glob("*") if not p.resolve().exists()]
    assert not broken, f"figure links to missing results: {broken}"
