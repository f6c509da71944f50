"""The commands that explain segments (``profile``, ``sweep``, ``validate``, ``report``) and keep
them current (``drift``, ``refit``).

Each lives in its own module, imported when its command runs, so ``segmint --help`` and the
other commands never load them.
"""


def profile(args):
    from . import profile as command
    return command.run(args)


def sweep(args):
    from . import sweep as command
    return command.run(args)


def validate(args):
    from . import validate as command
    return command.run(args)


def report(args):
    from . import report as command
    return command.run(args)


def drift(args):
    from . import drift as command
    return command.run(args)


def refit(args):
    from . import refit as command
    return command.run(args)
