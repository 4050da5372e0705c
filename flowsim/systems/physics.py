"""Physical systems: oscillators, chaotic flows and celestial mechanics.

Each class states its standard parameter values and where they come from. Characteristic
times (``timescale``) that depend on the parameters are recomputed from the defaults each
time a system is built, so ``get_system("pendulum", L=4.0).timescale`` is the period at L = 4.
The classes live in :mod:`.oscillators`, :mod:`.lorenz` and :mod:`.kepler`; this module gathers them.
"""

from .kepler import Kepler as Kepler
from .lorenz import Lorenz63 as Lorenz63
from .lorenz import Lorenz96 as Lorenz96
from .oscillators import DoublePendulum as DoublePendulum
from .oscillators import Duffing as Duffing
from .oscillators import HarmonicOscillator as HarmonicOscillator
from .oscillators import Pendulum as Pendulum
from .oscillators import VanDerPol as VanDerPol

__all__ = [
    "HarmonicOscillator",
    "Pendulum",
    "Duffing",
    "VanDerPol",
    "Lorenz63",
    "Lorenz96",
    "Kepler",
    "DoublePendulum",
]
