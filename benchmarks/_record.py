"""Write a benchmark's result as a record: what ran, where, from which commit, and what it gave.

Every script in ``benchmarks/`` ends with :func:`record`, which writes

    benchmarks/results/<script>/<YYYYmmdd-HHMMSS>-<short commit>[-<tag>].json   (+ .png)

and replaces ``benchmarks/results/<script>/latest[-<tag>].json`` (+ ``.png``), the files the
documentation shows. Each record holds

* ``commit``: ``{"sha": git rev-parse HEAD, "dirty": uncommitted changes to tracked files
  outside ``benchmarks/results``}``;
* ``date``: UTC, ISO 8601;
* ``machine``: CPU model, core count, memory, platform, Python and torch versions, torch threads,
  CUDA device name (if any);
* ``command``: the exact argv the script ran with;
* ``results``: what the script measured (its own layout).

Every file is written to a temporary name in the same folder and renamed, so an interrupted run
never leaves half a record or half a ``latest``. ``--results-dir`` (or the environment variable
``FLOWSIM_BENCH_RESULTS``) sends the records elsewhere, e.g. for a smoke run that must not touch
the committed results; ``--tag`` names a variant (``gpu-h200``, ``members2``) with its own
``latest-<tag>``.

This is a helper of the benchmark scripts, not part of the ``flowsim`` package.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def add_arguments(parser) -> None:
    """Add ``--tag`` and ``--results-dir`` to a script's argument parser."""
    parser.add_argument("--tag", default=None,
                        help="name of this variant (e.g. gpu-h200): the record ends in -<tag> and "
                             "updates latest-<tag> instead of latest")
    parser.add_argument("--results-dir", default=None,
                        help="root folder of the records (default benchmarks/results, or "
                             "$FLOWSIM_BENCH_RESULTS); use a temporary folder for smoke runs")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> dict[str, Any]:
    """The checked-out commit and whether tracked files differ from it (records under
    ``benchmarks/results`` aside: an earlier run's ``latest`` does not make the code dirty)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)benchmarks/results")
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, platform, Python, torch and CUDA device of this process."""
    import torch

    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(),
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cuda": cuda}


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """``commit``, ``date``, ``machine`` and ``command`` of this run."""
    argv = sys.argv if argv is None else argv
    return {"commit": commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "command": [Path(argv[0]).as_posix(), *argv[1:]] if argv else []}


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (NaN and infinities as null) to ``path``, atomically."""
    text = json.dumps(_finite(obj), indent=1, default=str)
    _atomic_bytes(Path(path), (text + "\n").encode())


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def results_root(results_dir: str | os.PathLike | None = None) -> Path:
    """Where records go: ``results_dir``, else ``$FLOWSIM_BENCH_RESULTS``, else benchmarks/results."""
    return Path(results_dir or os.environ.get("FLOWSIM_BENCH_RESULTS") or RESULTS)


def record(script: str, results: Any, *, tag: str | None = None, figure=None,
           results_dir: str | os.PathLike | None = None, argv: list[str] | None = None,
           extra: dict[str, Any] | None = None) -> Path:
    """Write one run's record and replace the matching ``latest``; return the record's path.

    Parameters
    ----------
    script
        The script's name without ``.py`` (the results folder).
    results
        What the run measured (JSON-serialisable).
    tag
        A variant's name: the record ends in ``-<tag>`` and replaces ``latest-<tag>``.
    figure
        A matplotlib figure saved beside the JSON (``.png``), or None.
    results_dir
        Root of the records (default: see :func:`results_root`).
    argv
        The command to record (default ``sys.argv``).
    extra
        More top-level fields (e.g. ``parts`` of a merged record).
    """
    if tag is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", tag):
        raise ValueError(f"tag {tag!r}: use letters, digits, '.', '_' and '-'")
    prov = provenance(argv)
    folder = results_root(results_dir) / script
    stamp = _dt.datetime.fromisoformat(prov["date"]).strftime("%Y%m%d-%H%M%S")
    short = (prov["commit"]["sha"] or "nogit")[:7]
    suffix = f"-{tag}" if tag else ""
    path = folder / f"{stamp}-{short}{suffix}.json"
    doc = {"script": f"benchmarks/{script}.py", "tag": tag, **prov, **(extra or {}),
           "results": results}
    write_json(path, doc)
    write_json(folder / f"latest{suffix}.json", doc)
    if figure is not None:
        import io

        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=110)
        _atomic_bytes(path.with_suffix(".png"), buf.getvalue())
        _atomic_bytes(folder / f"latest{suffix}.png", buf.getvalue())
    print(f"wrote {path} and {folder / f'latest{suffix}.json'}", flush=True)
    return path
