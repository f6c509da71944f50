"""segmint's own exceptions.

Every error a user can cause derives from :class:`SegmintError`, and also from the builtin
exception a Python user would expect (``FileNotFoundError``, ``KeyError``, ``TypeError``,
``ValueError``), so both ``except segmint.SegmintError`` and ``except KeyError`` work.
"""
import difflib


class SegmintError(Exception):
    """Base class of every error segmint raises on bad input."""


class DataError(SegmintError):
    """A data source cannot be opened or read as asked."""


class SourceNotFoundError(DataError, FileNotFoundError):
    """The path given to :func:`segmint.open` does not exist."""


class CorruptFileError(DataError, ValueError):
    """A file exists but is truncated, corrupt or not in a format segmint reads."""


class UnsupportedTypeError(DataError, TypeError):
    """A column's Arrow type has no segmint representation (lists, structs, binary...)."""


class UnknownColumnError(DataError, KeyError):
    """A column name that the source does not hold; the message names the closest names."""

    def __str__(self):  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class DuplicateColumnError(DataError, ValueError):
    """Two columns of a source share a name, so a name would not say which one is meant."""


class SourceConsumedError(DataError, RuntimeError):
    """A one-shot source (a RecordBatchReader or an IPC stream) was already read once."""


class ParameterError(SegmintError, ValueError):
    """An argument of a segmint function or estimator is out of range or of the wrong kind."""


class MissingExtraError(SegmintError, ImportError):
    """An optional part of segmint needs a library that is not installed; the message names
    the extra to install (``pip install 'segmint[yaml]'``)."""


class OutputError(SegmintError, OSError):
    """A result could not be written to its destination, or the destination was refused: it is,
    contains or lies inside an input, is ``""``, ``.``, the current or home folder, or is a
    non-empty folder segmint did not write (see :mod:`segmint.io.outputs`)."""


def closest_names(name, candidates, n=3):
    """The up to ``n`` names of ``candidates`` closest to ``name``, best first."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:
        lowered = {c.lower(): c for c in candidates}
        found = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)]
    return found


def unknown_column(name, candidates, where="the source"):
    """Build an :class:`UnknownColumnError` naming the closest existing columns."""
    candidates = list(candidates)
    near = closest_names(str(name), candidates)
    if near:
        hint = "did you mean " + " or ".join(repr(c) for c in near) + "?"
    else:
        shown = ", ".join(repr(c) for c in candidates[:12])
        more = f" (and {len(candidates) - 12} more)" if len(candidates) > 12 else ""
        hint = f"columns are: {shown}{more}" if candidates else "it has no columns"
    return UnknownColumnError(f"unknown column {name!r} in {where}; {hint}")
