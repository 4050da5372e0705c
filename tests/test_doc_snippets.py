"""Every ```python block of the README and docs/*.md runs as written.

The blocks of one page run in order in one namespace (a later block may use the names of an
earlier one), in a fresh temporary working directory, so the stores and checkpoints they write
go nowhere. A block that cannot run here (a real remote cluster, an object store, CUDA, a script
that must be its own ``__main__``) is preceded in the markdown by ``<!-- no-run: reason -->``;
keep those few. Bash blocks are not run (the CLI has its own tests).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?P<mark><!--\s*no-run:(?P<why>.*?)-->\s*\n)?^```python[^\n]*\n(?P<code>.*?)^```\s*$",
                    re.M | re.S)


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, no-run reason or None)`` of each python block of ``page``."""
    text = page.read_text()
    return [(text[:m.start("code")].count("\n") + 1, m["code"],
             m["why"].strip() if m["mark"] else None) for m in _BLOCK.finditer(text)]


def _pages_with_code() -> list[Path]:
    return [p for p in PAGES if blocks(p)]


def test_blocks_are_found_and_exceptions_are_few():
    found = {p.name: blocks(p) for p in _pages_with_code()}
    assert {"README.md", "getting-started.md", "ensembles.md", "systems.md"} <= set(found)
    skipped = [(page, line, why) for page, bs in found.items() for line, _, why in bs if why is not None]
    assert all(why for _, _, why in skipped), "a no-run mark needs its reason"
    assert len(skipped) <= 3, skipped
    total = sum(len(bs) for bs in found.values())
    assert total >= 10


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_snippets_run_as_written(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for line, code, why in blocks(page):
        if why is not None:
            continue
        compiled = compile("\n" * (line - 1) + code, str(page.relative_to(ROOT)), "exec")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. tiny runs' accuracy warnings
            exec(compiled, namespace)  # noqa: S102 - the documentation's own code
