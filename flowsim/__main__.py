"""``python -m flowsim`` runs the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # worker processes (fit_ensemble) re-import this module
    sys.exit(main())
