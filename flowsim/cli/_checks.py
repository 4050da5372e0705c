"""Checks of command-line values shared by the commands, each failing with one line that says
what to do: argparse types for counts and numbers, devices, output folders, fsspec URLs, Dask
scheduler addresses, and systems named by catalogue name or import path."""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SystemNotFoundError

__all__ = ["check_device", "check_output", "check_scheduler", "check_url", "finite_float",
           "get_cli_system", "positive_float", "positive_int"]

#: fsspec protocols and the package that provides each (what to tell a user to install)
FSSPEC_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                   "abfs": "adlfs", "abfss": "adlfs", "adl": "adlfs", "hf": "huggingface_hub",
                   "http": "aiohttp", "https": "aiohttp", "sftp": "paramiko", "ssh": "paramiko"}


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more); got {text}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number greater than 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0; got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in ``[0, 1]``."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1]; got {text}")
    return value


def check_device(text: str | None, option: str = "--device") -> str | None:
    """``text`` if torch can run on that device here; else a :class:`ConfigError` saying why."""
    if text is None:
        return None
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{option} {text!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ConfigError(f"{option} {text}: CUDA is not available in this torch build "
                              f"(torch {torch.__version__}); use --device cpu or install a CUDA build "
                              "of torch")
        n = torch.cuda.device_count()
        if n == 0:
            raise ConfigError(f"{option} {text}: no CUDA device is visible (check the driver and "
                              "CUDA_VISIBLE_DEVICES); use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{option} {text}: no CUDA device {dev.index}; this machine has {n} "
                              f"(cuda:0 to cuda:{n - 1})")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{option} {text}: MPS (Apple GPU) is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"{option} {text}: flowsim runs on cpu, cuda or mps")
    return text


def check_url(path: Any, option: str) -> None:
    """Refuse an fsspec URL whose filesystem is not installed or not known (one line saying what
    to install); local paths pass."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://", text)
    if not m or m.group(1).lower() in ("file", "local"):
        return
    protocol = m.group(1).lower()
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        pkg = FSSPEC_PACKAGES.get(protocol, f"the fsspec implementation of {protocol}://")
        raise ConfigError(f"{option} {text}: install {pkg} (pip install {pkg}) to use {protocol}:// "
                          "paths") from None
    except ValueError:
        raise ConfigError(f"{option} {text}: unknown protocol {protocol}://; give a local path or "
                          "an fsspec URL (s3://, gs://, …)") from None


def check_output(path: Any, option: str = "--out") -> None:
    """Refuse an output folder that is a regular file, lies below one, or cannot be written to
    (URLs: only their filesystem is checked)."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if "://" in text:
        check_url(text, option)
        return
    p = Path(text).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {text} is a file, not a folder; give a folder path (it is "
                          "created if missing)")
    parent = p
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {text}: {parent} is a file, so no folder can be made below it; "
                          "choose another path")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {text}: cannot write in {parent} (permission denied); choose a "
                          "folder you can write to")


_PORT = re.compile(r":(\d{1,5})/?$")


def check_scheduler(address: str | None, option: str = "--scheduler") -> str | None:
    """A Dask scheduler address must name its port (``tcp://10.0.0.1:8786``)."""
    if address is None:
        return None
    text = address.strip()
    if text.lower() in ("sync", "synchronous", "single-threaded"):
        return text
    rest = text.split("://", 1)[1] if "://" in text else text
    if text.startswith("inproc://"):
        return text
    m = _PORT.search(rest)
    if not rest or m is None or rest.startswith(":") or not 0 < int(m.group(1)) < 65536:
        raise ConfigError(f"{option} {address}: a scheduler address needs a host and a port, "
                          "e.g. tcp://10.0.0.1:8786")
    return text


def get_cli_system(name: str | None, sbml: str | None = None, timescale: float | None = None) -> Any:
    """The ODESystem a command line names: a catalogue name or an import path
    (``mypkg.models:make_system``), or an SBML file (``--sbml model.xml``, with its
    ``--timescale`` where the estimate does not fit)."""
    from ..systems import from_sbml, get_system
    from ..systems.imports import is_import_path, resolve_system

    if sbml:
        if name:
            raise ConfigError(f"give either a system ({name}) or --sbml {sbml}, not both")
        return from_sbml(sbml, timescale=timescale)
    if timescale is not None:
        raise ConfigError("--timescale is for --sbml models (whose timescale is otherwise "
                          "estimated); a named system has its own")
    if not name:
        raise ConfigError("name a system (a catalogue name or an import path) or give --sbml MODEL.xml")

    if is_import_path(name):
        return resolve_system(name)
    try:
        return get_system(name)
    except SystemNotFoundError as err:
        raise SystemNotFoundError(f"{err}; on the command line, name your own system by its import "
                                  "path, e.g. mypkg.models:make_system") from None
