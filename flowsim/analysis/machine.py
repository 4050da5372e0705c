"""How busy the machine is before timing: timings taken while other processes use the cores lie.

Two processes that each use every core slow torch down many times over (their OpenMP threads
spin against each other), so a speed-up measured on a busy machine can read as a slow-down.
:func:`machine_load` measures, over a short interval, how much CPU *other* processes use, and
says whether timings taken now can be trusted.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["MachineLoad", "machine_load"]

#: other processes using more than this fraction of all cores make timings unreliable
BUSY_FRACTION = 0.25


@dataclass(frozen=True)
class MachineLoad:
    """CPU use of other processes during a short check, and whether timings can be trusted.

    Attributes
    ----------
    cpu_count:
        Logical CPUs of the machine.
    others_cpu_fraction:
        Fraction of all CPUs that other processes used during the check (0 idle, 1 all busy);
        NaN where the platform does not tell (no ``/proc/stat``).
    load_average:
        The 1-minute load average (NaN where the platform has none).
    interval:
        Seconds the check watched.
    busy:
        Whether other processes used more than :data:`BUSY_FRACTION` of the CPUs (or, without
        ``/proc/stat``, whether the load average exceeds a quarter of the CPUs).

    Examples
    --------
    >>> from flowsim.analysis import MachineLoad
    >>> MachineLoad(2, 0.9, 1.8, 0.5, True).warning().startswith("timings are unreliable")
    True
    """

    cpu_count: int
    others_cpu_fraction: float
    load_average: float
    interval: float
    busy: bool

    def warning(self) -> str:
        """A one-line warning when the machine is busy, else ``""``."""
        if not self.busy:
            return ""
        if self.others_cpu_fraction == self.others_cpu_fraction:  # not NaN
            what = f"other processes used {100 * self.others_cpu_fraction:.0f} % of the {self.cpu_count} CPUs"
        else:
            what = f"the load average is {self.load_average:.1f} on {self.cpu_count} CPUs"
        return (f"timings are unreliable: {what} while this measured; rerun when the machine is "
                "quiet for speed figures you can quote")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict, with the warning."""
        return {**asdict(self), "warning": self.warning()}


def _busy_jiffies() -> tuple[float, float] | None:
    """(busy, total) CPU jiffies of the whole machine since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    v = [float(x) for x in fields]
    idle = v[3] + (v[4] if len(v) > 4 else 0.0)  # idle + iowait
    return sum(v) - idle, sum(v)


def machine_load(interval: float = 0.5) -> MachineLoad:
    """Measure how much CPU other processes use during ``interval`` seconds (this one sleeps).

    Arguments
    ---------
    interval:
        Seconds to watch, > 0 (0.5 s is enough to see a process that keeps a core busy).

    Returns
    -------
    MachineLoad

    Raises
    ------
    ConfigError
        A non-positive interval.

    Examples
    --------
    >>> from flowsim.analysis import machine_load
    >>> load = machine_load(0.1)
    >>> 0.0 <= load.others_cpu_fraction <= 1.0 or load.others_cpu_fraction != load.others_cpu_fraction
    True
    """
    if not (isinstance(interval, (int, float)) and interval > 0):
        raise ConfigError(f"interval must be a positive number of seconds; got {interval!r}")
    n = os.cpu_count() or 1
    try:
        load1 = os.getloadavg()[0]
    except (OSError, AttributeError):
        load1 = float("nan")
    before = _busy_jiffies()
    own0 = time.process_time()
    time.sleep(interval)
    own = time.process_time() - own0
    after = _busy_jiffies()
    if before is None or after is None or after[1] <= before[1]:
        frac = float("nan")
        busy = load1 == load1 and load1 > BUSY_FRACTION * n
    else:
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy_s = (after[0] - before[0]) / hz - own
        total_s = (after[1] - before[1]) / hz
        frac = min(max(busy_s / total_s, 0.0), 1.0) if total_s > 0 else float("nan")
        busy = frac > BUSY_FRACTION
    return MachineLoad(cpu_count=n, others_cpu_fraction=frac, load_average=load1,
                       interval=float(interval), busy=bool(busy))
