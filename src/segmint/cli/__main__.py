"""``python -m segmint.cli``: the same as the ``segmint`` command."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
