"""machine_load sees other processes using the cores, and says so in words."""

import math
import subprocess
import sys
import time

import pytest

from flowsim import ConfigError
from flowsim.analysis import MachineLoad, machine_load

SPIN = "import time\nt = time.time()\nwhile time.time() - t < 30: pass\n"


def test_busy_cores_are_seen_and_reported():
    import os

    n = os.cpu_count() or 1
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start
        load = machine_load(1.0)
    finally:
        for s in spinners:
            s.kill()
    if math.isnan(load.others_cpu_fraction):
        pytest.skip("no /proc/stat on this platform")
    assert load.busy and load.others_cpu_fraction > 0.6
    assert load.warning().startswith("timings are unreliable: other processes used")
    assert load.to_dict()["warning"] == load.warning()


def test_quiet_reads_no_warning_and_bad_interval():
    assert MachineLoad(2, 0.05, 0.1, 0.5, False).warning() == ""
    assert "load average is 3.0" in MachineLoad(2, math.nan, 3.0, 0.5, True).warning()
    for bad in (0, -1.0, "1"):
        with pytest.raises(ConfigError, match="interval"):
            machine_load(bad)
