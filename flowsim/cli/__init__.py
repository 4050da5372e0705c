"""The ``flowsim`` command line (``flowsim --help``), one module per command group.

* :mod:`._parser` — the top-level parser and :func:`main` (a bad option or a
  :class:`~flowsim.errors.FlowsimError` becomes one line on stderr and exit status 2, any other
  exception one line naming its type and exit status 1; ``flowsim --debug …`` shows the traceback);
* :mod:`._checks` — checks shared by the commands (counts, devices, output folders, fsspec URLs,
  scheduler addresses, systems by catalogue name or import path ``mypkg.models:make_system``);
* :mod:`.systems` — ``flowsim systems``;
* :mod:`.data` — ``flowsim simulate`` and ``flowsim info``;
* :mod:`.train` — ``flowsim train``;
* :mod:`.evaluate` — ``flowsim evaluate``;
* :mod:`.quickstart` — ``flowsim quickstart``.

Each command module has ``add_parser(subparsers)``, which adds its subcommand(s) to an
``argparse`` subparsers object and sets ``func``, and ``run(args)``, which takes the parsed
arguments and returns the exit status. The console script ``flowsim`` is :func:`main`.
"""

from __future__ import annotations

from ._parser import build_parser as build_parser
from ._parser import main as main

__all__ = ["build_parser", "main"]
