"""The import graph follows the layers of DESIGN.md.

Data flows one way: ``systems`` knows nothing of ``data``, ``maps`` nothing of ``train`` or
``data``, ``train`` nothing of ``analysis``; only ``report`` and the CLI use ``analysis``. No module
imports the package face, and no private (``_x``) module or name of a subpackage is imported from
another subpackage, from benchmarks or from tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "flowsim"

#: a module may import modules of a lower rank only (and its own subpackage); equal ranks are
#: independent siblings. Top-level private modules (``_utils``, ``_version``) are the package's own;
#: ``_utils`` sits just above ``errors``, so that its checks raise the package's errors.
RANK = {
    "errors": 0, "_version": 0, "_utils": 0.5,
    "systems": 1, "metrics": 1,
    "solve": 2,
    "data": 3, "maps": 3,
    "train": 4,
    "analysis": 5, "steer": 5, "generative": 5,
    "_report_text": 5, "report": 6, "testing": 6,
    "cli": 7, "__main__": 8,
}


def _unit(path: Path) -> str:
    """The layer a file of flowsim/ belongs to: its subpackage, or its own name at the top."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line, absolute module path as parts, imported names) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append((node.lineno, a.name.split("."), []))
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:
                here = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]
                if path.name == "__init__.py":
                    here = list(path.relative_to(ROOT).parent.parts)
                base = here[: len(here) - (node.level - 1)]
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            out.append((node.lineno, mod, names))
    return out


def _targets(mod: list[str], names: list[str]) -> list[list[str]]:
    """The flowsim modules an import reaches (``from .x import y`` may name submodule y)."""
    if not mod or mod[0] != "flowsim":
        return []
    if len(mod) == 1:  # from flowsim import x / from . import x
        return [["flowsim", n] for n in names] if names else [mod]
    return [mod]


def _package_files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_upward_imports_and_no_package_face():
    problems = []
    for path in _package_files():
        unit = _unit(path)
        if unit == "__init__":
            continue  # the package face re-exports everything
        for line, mod, names in _imports(path):
            for target in _targets(mod, names):
                if len(target) == 1 or target[1] not in RANK:
                    if len(target) == 1 or (target[1] not in RANK and not (PKG / target[1]).exists()
                                            and not (PKG / f"{target[1]}.py").exists()):
                        problems.append(f"{path.relative_to(ROOT)}:{line} imports the package face")
                    elif target[1] not in RANK:
                        problems.append(f"{path.relative_to(ROOT)}:{line}: {target[1]} has no layer")
                    continue
                other = target[1]
                if other == unit:
                    continue
                if unit not in RANK:
                    problems.append(f"{path.relative_to(ROOT)}: layer {unit!r} not declared in RANK")
                    break
                if RANK[other] >= RANK[unit]:
                    problems.append(
                        f"{path.relative_to(ROOT)}:{line}: {unit} (rank {RANK[unit]}) imports "
                        f"{other} (rank {RANK[other]})"
                    )
    assert not problems, "\n".join(problems)


def _private_problems(path: Path, own_unit: str | None) -> list[str]:
    problems = []
    for line, mod, names in _imports(path):
        for target in _targets(mod, names):
            if len(target) < 2:
                continue
            other = target[1]
            if own_unit is not None and other == own_unit:
                continue
            if own_unit is not None and other.startswith("_") and len(target) == 2:
                continue  # the package's own top-level helpers (_utils, _version)
            private_mod = any(part.startswith("_") and part != "__init__" for part in target[1:])
            private_name = any(
                n.startswith("_") and not n.startswith("__") for n in names
            )
            if private_mod or private_name:
                what = ".".join(target) + (f" import {', '.join(names)}" if names else "")
                problems.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    return problems


def test_no_private_import_across_subpackages():
    problems = []
    for path in _package_files():
        unit = _unit(path)
        if unit == "__init__":
            continue
        problems += _private_problems(path, unit)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmarks_use_public_names_only(folder):
    problems = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        problems += _private_problems(path, None)
    assert not problems, "\n".join(problems)


def test_no_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in _package_files()
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"files over ~400 lines (split them): {long}"
