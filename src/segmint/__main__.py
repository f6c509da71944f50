"""``python -m segmint``: the same as the ``segmint`` command (e.g. ``python -m segmint serve ...``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
