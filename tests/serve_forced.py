"""``segmint serve`` with its shedding controller held in one state, for tests of the protocol's
fast refusal (``python -m serve_forced serve ...`` with ``tests/`` on the path).

``SEGMINT_TEST_SHARE`` is the admitted share to hold (0: refuse every request the protocol may
refuse). Only :meth:`LoopLag.control` is replaced: the protocol, the app, uvicorn and HTTP are
the real ones.
"""
import os
import sys

from segmint.serve import admission


def _held(self, lag, now, cpu=None):
    self.shedding, self.share = True, float(os.environ.get("SEGMINT_TEST_SHARE", "0"))


_start = admission.LoopLag.start


def _start_held(self, loop):
    # held from the start, not from the first tick: a request sent right after the ready line
    # could otherwise come before it (seen once in CI: a 200 where a 503 was due)
    _start(self, loop)
    _held(self, 0.0, 0.0)


if __name__ == "__main__":
    admission.LoopLag.control = _held
    admission.LoopLag.start = _start_held
    from segmint.cli import main

    sys.exit(main(sys.argv[1:]))
