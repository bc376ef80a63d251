"""``python -m theorylab.sweep run|status|export|plot``: see :mod:`theorylab.sweep.cli`."""

import sys

from .cli import main

# Spawned worker processes import this module as __mp_main__: only a real run parses argv.
if __name__ == "__main__":
    sys.exit(main())
