"""Ctrl-C while the ``segmint`` command starts.

Before the command line's own code runs, Python imports segmint, numpy, pyarrow and numba
(about half a second). A Ctrl-C then would print a traceback and end the process with
-SIGINT. When this process *is* the ``segmint`` command (the console script, or
``python -m segmint.cli``), importing this module first (from ``segmint/__init__``) installs a
handler that answers such a Ctrl-C as the command line does: one line, exit status 130.
:func:`segmint.cli.main` replaces it with its own as soon as it runs. A program that
merely imports segmint is not affected.
"""
import atexit
import os
import signal
import sys
import threading


def is_segmint_command():
    """True when this process was started as the ``segmint`` command line."""
    if sys.argv and os.path.basename(sys.argv[0]) in ("segmint", "segmint.exe"):
        return True
    argv = list(getattr(sys, "orig_argv", ()))
    return any(a == "-m" and b in ("segmint.cli", "segmint") for a, b in zip(argv, argv[1:]))


def _interrupted_while_starting(signum, frame):
    # nothing has been opened or written yet: leaving at once is safe and is what was asked
    os.write(2, b"segmint: interrupted; nothing was written\n")
    os._exit(130)


def take_over_interrupts(handler):
    """In the ``segmint`` process, make ``handler`` answer SIGINT from now on (replacing the
    start-up handler in one step, so no Ctrl-C falls between the two). Elsewhere (a program
    calling ``segmint.cli.main``) leave SIGINT to the program."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if current is _interrupted_while_starting or (
            is_segmint_command() and current in (signal.default_int_handler, handler)):
        signal.signal(signal.SIGINT, handler)
        atexit.register(_ignore_interrupts)


def _ignore_interrupts():
    # Python's last clean-up (after worker threads are joined and atexit runs) puts SIGINT
    # back to the system default, which would kill the finished process (exit -2): ignore it
    # instead for those last milliseconds, so the process exits with its own status
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _install():
    if (is_segmint_command() and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupted_while_starting)


_install()
