"""What the commands share: progress bars, notes, spec files and segment counts."""
import sys


class Progress:
    """A tqdm bar on stderr when it is a terminal (and not ``--quiet``); else silent.

    Called with each batch's row count (a ``progress=`` callback)."""

    def __init__(self, args, total, desc, unit="rows"):
        self.bar = None
        if not args.quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, file=sys.stderr,
                            leave=False, dynamic_ncols=True)

    def __call__(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def note(args, text):
    """A remark on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(text, file=sys.stderr)


def read_spec_file(path, what):
    """A JSON or YAML document given on the command line (a DataError names it when bad)."""
    from .._documents import read_document
    from ..errors import DataError
    return read_document(path, what, DataError)


def print_counts(counts):
    """One line per segment of a rule set's counts table."""
    for name, matched, unknown, share in zip(*(counts.column(c).to_pylist()
                                              for c in ("segment", "matched", "unknown", "share"))):
        extra = f"  ({unknown:,} unknown: a value was null)" if unknown else ""
        print(f"  {name:<24} {matched:>11,} {share:7.1%}{extra}")
