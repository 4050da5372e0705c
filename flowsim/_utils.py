"""Small private helpers shared across flowsim modules."""

from __future__ import annotations

import dataclasses
import errno
import math
import numbers
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

__all__ = ["as_generator", "atomic_path", "disk_full", "file_mode", "full_disk_error"]

#: errno values of a full disk or an exhausted quota
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def as_generator(
    generator: torch.Generator | int | None, device: torch.device | str | None = None
) -> torch.Generator:
    """Return a ``torch.Generator``: the one given, one seeded with an int, or a fresh random one."""
    if isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator(device=device or "cpu")
    if generator is None:
        g.seed()
    elif isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        g.manual_seed(int(generator))
    else:
        from .errors import ConfigError

        raise ConfigError(f"generator must be a torch.Generator, an int seed or None; got "
                          f"{generator!r}")
    return g


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    try:  # Linux: read the umask without changing it (os.umask would, for every thread)
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it chains) is a full disk or an exhausted quota that
    has not been reported yet (by :func:`full_disk_error`)."""
    seen = 0
    while err is not None and seen < 8:
        if getattr(err, "flowsim_full_disk", False):
            return False  # already reported (an enclosing writer adds nothing)
        if isinstance(err, OSError) and err.errno in _FULL:
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def full_disk_error(path: str | os.PathLike, err: BaseException, error: type[Exception] | None = None,
                    kept: str = "") -> Exception:
    """The error to raise when writing ``path`` found the disk full: ``error(message)`` (a
    :class:`~flowsim.FlowsimError` subclass), or an ``OSError`` with that message."""
    tail = f"; {kept}" if kept else ""
    msg = (f"no space left on the device while writing {os.fspath(path)} ({err}); free some "
           f"space or write somewhere else{tail}")
    out = OSError(getattr(err, "errno", errno.ENOSPC), msg) if error is None else error(msg)
    out.flowsim_full_disk = True  # type: ignore[attr-defined]  # wrapped once, not again
    return out


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", *,
                error: type[Exception] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash inside the block leaves ``path`` untouched (the old file, or nothing). The file gets
    the mode the umask gives new files (``mkstemp`` alone would make it ``0600``). A full disk
    raises ``error`` (a :class:`~flowsim.FlowsimError` subclass; default an ``OSError``) naming
    ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    except OSError as err:
        if disk_full(err):
            raise full_disk_error(target, err, error) from err
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, target)
    except Exception as err:
        if disk_full(err):
            kept = f"the previous {target.name} is unchanged" if target.exists() else ""
            raise full_disk_error(target, err, error, kept) from err
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def with_keywords(cls: type, given: Any, keywords: Mapping[str, Any], *, what: str,
                  error: type[Exception], exclusive: bool = False, hint: str = "") -> Any:
    """A frozen options dataclass ``cls`` from ``given`` (an instance or ``None``: the defaults)
    with ``keywords`` (its fields by name) applied — the one implementation of "a typed config,
    or its fields as keywords" behind ``fit``, ``reference_solve``, the samplers and
    ``work_precision``. Unknown names raise ``error`` listing the fields; with ``exclusive``,
    giving both an instance and keywords is refused too. ``hint`` ends the unknown-name message.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     a: int = 1
    >>> with_keywords(Opts, None, {"a": 2}, what="demo", error=ValueError)
    Opts(a=2)
    """
    fields = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(keywords) - set(fields))
    if unknown:
        raise error(f"unknown {what} option(s) {unknown}; the fields of {cls.__name__} are {fields}{hint}")
    if given is not None and not isinstance(given, cls):
        raise error(f"{what} options must be a {cls.__name__}; got {type(given).__name__}")
    if given is not None and keywords and exclusive:
        raise error(f"give either a {cls.__name__} or the keywords {sorted(keywords)}, not both; e.g. "
                    f"dataclasses.replace(options, {', '.join(f'{k}=…' for k in sorted(keywords))})")
    if given is None:  # built from the keywords (fields resolved from others see them all)
        return cls(**keywords)
    return dataclasses.replace(given, **keywords) if keywords else given


def check_int(value: Any, name: str, error: type[Exception], *, low: int = 1,
              integral_floats: bool = False) -> int:
    """``value`` as an ``int``, or ``error`` unless it is an integer ``>= low`` — the one check
    behind every count flowsim takes (steps, batch sizes, sample counts, chunk sizes). A bool is
    never a count; numpy integers are; integral floats (``1e4``) only with ``integral_floats``.

    Examples
    --------
    >>> check_int(3, "n", ValueError)
    3
    >>> check_int(-3, "n", ValueError)
    Traceback (most recent call last):
    ...
    ValueError: n must be a positive integer; got -3
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if integral_floats and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(value) and int(value) == value
    if not ok or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise error(f"{name} must be {what}; got {value!r}")
    return int(value)
