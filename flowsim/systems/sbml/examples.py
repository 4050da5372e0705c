"""Published SBML models shipped with flowsim, for examples and tutorials."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError

__all__ = ["EXAMPLE_MODELS", "example_model"]

_HERE = Path(__file__).resolve().parent / "models"

#: The shipped models (sources and licences in ``flowsim/systems/sbml/models/README.md``).
EXAMPLE_MODELS = {"repressilator": "repressilator.xml"}


def example_model(name: str = "repressilator") -> Path:
    """The path of a published SBML model shipped with flowsim.

    Arguments
    ---------
    name:
        One of :data:`EXAMPLE_MODELS`: ``"repressilator"`` (Elowitz & Leibler 2000,
        BioModels BIOMD0000000012).

    Examples
    --------
    >>> from flowsim.systems.sbml import example_model
    >>> example_model("repressilator").name
    'repressilator.xml'
    """
    if name not in EXAMPLE_MODELS:
        raise ConfigError(f"no shipped SBML model {name!r}; choose from {sorted(EXAMPLE_MODELS)}")
    return _HERE / EXAMPLE_MODELS[name]
