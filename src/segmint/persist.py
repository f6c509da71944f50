"""``segmint.load``: read back whatever ``save(path)`` wrote.

Every learned or authored object saves as plain data with a ``format`` field and a
``version``:

========================== ===================== ==========================================
format                     file                  object
========================== ===================== ==========================================
``segmint-model``          ``.seg`` zip          :class:`~segmint.Segmenter`
``segmint-rules``          JSON or YAML          :class:`~segmint.RuleSet`
``segmint-rfm-boundaries`` JSON (or YAML)        :class:`~segmint.RFMScorer`
========================== ===================== ==========================================

A hand-written rule file without ``format`` but with ``segments`` loads as a RuleSet too.
The typed loaders (``Segmenter.load``, ``RuleSet.load``, ``RFMScorer.load``) read one type
each; this module only looks at what a file is and hands it to the right one.
"""
import os
import stat

from ._documents import read_document
from .errors import CorruptFileError, SourceNotFoundError
from .pipeline.model_file import FORMAT as MODEL_FORMAT
from .pipeline.segmenter import Segmenter
from .rules import RuleSet
from .rules.ruleset import FORMAT as RULES_FORMAT

_ZIP_MAGIC = b"PK\x03\x04"


def load(path):
    """The object saved at ``path``: a Segmenter, a RuleSet or an RFMScorer.

    Parameters
    ----------
    path : str or os.PathLike
        A model (a zip; a ``.seg`` file is always read as one), or a JSON/YAML document whose ``format`` is
        ``"segmint-rules"`` or ``"segmint-rfm-boundaries"`` (a rule file without ``format``
        but with ``segments`` is a RuleSet too). YAML is read from ``.yaml``/``.yml`` files.

    Returns
    -------
    Segmenter, RuleSet or RFMScorer

    Raises
    ------
    SourceNotFoundError
        No file at ``path``.
    CorruptFileError
        A file of another kind (the message names what was found), or a damaged or hostile
        one (:class:`~segmint.ModelFormatError` for a model, :class:`~segmint.RuleSetError`
        for rules); reading is bounded as in the typed loaders.

    Examples
    --------
    >>> model.save("segments.seg")                  # doctest: +SKIP
    >>> segmint.load("segments.seg").score(data)    # doctest: +SKIP
    """
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceNotFoundError(f"no file at {path}") from None
    # a .seg name or a zip is a model; folders, devices, pipes and empty files too: the model
    # loader's checks say what is wrong (a fifo must never be opened here: reading it blocks)
    if path.lower().endswith(".seg") or not stat.S_ISREG(info.st_mode) or info.st_size == 0 \
            or _starts_with(path, _ZIP_MAGIC):
        return Segmenter.load(path)
    for magic, kind in ((b"ARROW1", "an Arrow IPC file"), (b"PAR1", "a Parquet file"),
                        (b"\xff\xff\xff\xff", "an Arrow IPC stream")):
        if _starts_with(path, magic):
            raise CorruptFileError(f"{path} is {kind}, data rather than a saved object: open it with "
                                   "segmint.open; segmint.load reads a .seg model, a rule set or RFM "
                                   "boundaries")
    doc = read_document(path, "the file", CorruptFileError)
    # here, not at import: loading a model (the start-up path of a service) needs no events code
    from .events.rfm import FORMAT as RFM_FORMAT
    from .events.rfm import RFMScorer
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind == RULES_FORMAT or (isinstance(doc, dict) and "format" not in doc and "segments" in doc):
        if path.lower().endswith((".json", ".yaml", ".yml")):
            return RuleSet.load(path)
        return RuleSet.from_dict(doc)  # RuleSet.load goes by the suffix; this one was read as JSON
    if kind == RFM_FORMAT:
        return RFMScorer._from_document(doc, path)
    raise CorruptFileError(f"{path}: {_what(doc)}; segmint.load reads a .seg model (format "
                           f"{MODEL_FORMAT!r}) or a JSON/YAML document of format {RULES_FORMAT!r} "
                           f"or {RFM_FORMAT!r}")


def _starts_with(path, magic):
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _what(doc):
    """What a document that segmint.load cannot read holds, in a few words."""
    if not isinstance(doc, dict):
        return f"a JSON/YAML document holding a {type(doc).__name__}, not an object with a 'format'"
    if "format" not in doc:
        keys = sorted(map(str, doc))
        shown = ", ".join(repr(k[:40]) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
        return f"a document without 'format' (keys: {shown or 'none'})"
    kind = doc["format"]
    if kind == MODEL_FORMAT:
        return "the description of a model, not a model file: load the .seg file it came from"
    text = repr(kind)
    return f"a document of format {text if len(text) <= 60 else text[:57] + '...'}"
