"""Execute the tutorials and write copies with their outputs for the documentation site.

    python docs/render_tutorials.py              # all of tutorials/*.ipynb, full size
    python docs/render_tutorials.py 02 05        # only the tutorials whose names start so
    python docs/render_tutorials.py --fast --out /tmp/nb   # smoke run (FLOWSIM_TUTORIAL_FAST=1)

``tutorials/`` holds the notebooks with outputs stripped (what users open and the test suite
runs in fast mode). The site shows real outputs and figures, so this script executes each
notebook at its default (full) size with nbclient, in a fresh temporary working directory (the
zarr stores the notebooks write are discarded), and writes the executed notebook to
``docs/tutorials/<name>.ipynb``, which mkdocs-jupyter renders without executing again. The
executed copies are committed; ``tests/test_docs_and_tutorials.py`` checks that their code
cells are those of ``tutorials/``, so re-render after editing a tutorial.

The kernel starts with ``--matplotlib=inline``, so figures returned as a cell's last value
render as images even in notebooks that do not say ``%matplotlib inline``. Each notebook's wall
time is printed and stored in its metadata (``metadata.flowsim.wall_time_s``), with the load
average at the start, since the machine may be busy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tutorials"
TARGET = ROOT / "docs" / "tutorials"


def tutorials(prefixes: list[str]) -> list[Path]:
    """The tutorial notebooks, optionally only those whose names start with one of ``prefixes``."""
    found = sorted(SOURCE.glob("*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def execute(path: Path, out: Path, *, fast: bool, timeout: int) -> float:
    """Execute ``path`` in a temporary directory and write it with outputs to ``out``; return seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_fast = os.environ.pop("FLOWSIM_TUTORIAL_FAST", None)
    if fast:
        os.environ["FLOWSIM_TUTORIAL_FAST"] = "1"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        with tempfile.TemporaryDirectory(prefix="flowsim-tutorial-") as work:
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={
                "metadata": {"path": work}}, extra_arguments=["--matplotlib=inline"], record_timing=False)
            t0 = time.perf_counter()
            client.execute()
            wall = time.perf_counter() - t0
    finally:
        os.environ.pop("FLOWSIM_TUTORIAL_FAST", None)
        if env_fast is not None:
            os.environ["FLOWSIM_TUTORIAL_FAST"] = env_fast
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata["flowsim"] = {"mode": "fast" if fast else "full", "wall_time_s": round(wall, 1),
                              "load_average_1min_at_start": round(load, 2), "cpus": os.cpu_count()}
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="name prefixes of the tutorials to render (default: all)")
    ap.add_argument("--fast", action="store_true", help="execute with FLOWSIM_TUTORIAL_FAST=1")
    ap.add_argument("--out", type=Path, default=TARGET, help=f"output folder (default {TARGET})")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = ap.parse_args(argv)
    paths = tutorials(args.names)
    if not paths:
        print("no tutorial matches", args.names, file=sys.stderr)
        return 1
    if args.fast and args.out.resolve() == TARGET.resolve():
        print("--fast renders are smoke runs: give --out elsewhere, not the site's folder", file=sys.stderr)
        return 1
    times = {}
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        times[path.name] = execute(path, args.out / path.name, fast=args.fast, timeout=args.timeout)
        print(f"  {times[path.name]:.0f} s -> {args.out / path.name}", flush=True)
    print("\nwall time per notebook (" + ("fast" if args.fast else "full") + " mode):")
    for name, wall in times.items():
        print(f"  {name:40s} {wall:6.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
