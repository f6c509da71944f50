"""Where segmint may write: the output-path rules every writer (and the CLI) follows.

segmint never deletes or replaces anything it did not write, and never writes over its own
input. Concretely, an output is refused, before any work, when it

- is empty (``""``), the current folder (or a folder holding it), ``/`` or the home folder;
- is, contains or lies inside an input of the same call (real paths: symlinks and ``..`` are
  resolved; an existing file that is a hard link to an input file counts as that input);
- is an existing folder where a file is written, or an existing file (or device, pipe...)
  where a folder is written;
- is an existing non-empty folder that segmint did not write. A Parquet dataset written by
  segmint carries a marker file (:data:`MARKER`) listing its part files; such a folder is
  replaced only while it holds nothing but the marker and those parts, and replacing it
  removes only what the marker lists.

It also keeps a small registry of committed outputs, so that the CLI can say after a Ctrl-C
whether an output was written.
"""
import json
import os
import stat
import threading
import warnings
from pathlib import Path

from ..errors import OutputError

MARKER = "_segmint_dataset.json"   # not *.parquet: the folder reader must not take it for data
MARKER_FORMAT = "segmint-parquet-dataset"
MARKER_VERSION = 1
_MARKER_MAX_BYTES = 1 << 20        # a marker lists part names; anything bigger is not ours
_ADVICE = "write to a new or empty path"


# -- the checks ---------------------------------------------------------------------------------
def check_output(path, *, inputs=(), folder=False, overwrite=True):
    """Refuse an output path that could overwrite or delete data segmint did not write.

    Parameters
    ----------
    path : str or os.PathLike
        The destination: a file, or a folder when ``folder`` is true (a Parquet dataset).
    inputs : iterable of str or os.PathLike, optional
        Files and folders the same call reads (``Source.paths``); None entries are skipped.
    folder : bool
        True when the output is a folder (it may then replace only an empty folder or one that
        segmint wrote).
    overwrite : bool
        False refuses any existing destination.

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    OutputError
        Naming the path and the reason.
    """
    path = check_location(path)
    check_not_an_input(path, inputs)
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):  # before the work, not after it
        raise OutputError(f"cannot write {str(path)!r}: folder {str(parent)!r} is not writable")
    if not os.path.lexists(path):
        return path
    if not overwrite:
        raise OutputError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    st = os.stat(path) if os.path.exists(path) else os.lstat(path)
    if folder:
        if not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{str(path)!r} is a file; it cannot be replaced by a folder (a Parquet "
                              f"dataset); {_ADVICE}")
        if os.path.islink(path):
            raise OutputError(f"{str(path)!r} is a link to a folder; segmint replaces only folders it "
                              f"wrote; {_ADVICE}")
        dataset_parts(path)  # raises unless the folder is empty or segmint's own
    elif stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{str(path)!r} is a folder; it cannot be replaced by a file; {_ADVICE}")
    elif not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{str(path)!r} is not a regular file (a device, a pipe or a socket); "
                          f"segmint replaces only regular files; {_ADVICE}")
    return path


def check_location(path):
    """Refuse ``""``, ``.``, the current folder (or one holding it), ``/`` and the home folder.

    Returns ``path`` as a :class:`pathlib.Path`.
    """
    if path is None or not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"an output path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise OutputError("the output path is empty; name a file or a new folder")
    if any(len(os.fsencode(part)) > 255 for part in text.split(os.sep)):
        raise OutputError(f"cannot write {text[:60]!r}...: a name in it is longer than 255 bytes")
    real = _real(text)
    if real == os.path.realpath(os.sep):
        raise OutputError(f"refusing to write to {text!r}: it is the root folder; {_ADVICE}")
    home = os.path.expanduser("~")
    if home != "~" and real == os.path.realpath(home):
        raise OutputError(f"refusing to write to {text!r}: it is the home folder; {_ADVICE}")
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the current folder was removed: nothing to protect there
        cwd = None
    if cwd is not None and (real == cwd or _within(cwd, real)):
        what = "the current folder" if real == cwd else "a folder holding the current folder"
        raise OutputError(f"refusing to write to {text!r}: it is {what}; {_ADVICE}")
    return Path(text)


def check_not_an_input(path, inputs):
    """Refuse ``path`` when it is, contains or lies inside one of ``inputs`` (or hard-links one)."""
    out_real = _real(path)
    out_place = _place(path)  # where the name itself lives (a symlink is replaced, not followed)
    for item in inputs or ():
        if item is None:
            continue
        in_real = _real(item)
        for out in {out_real, out_place}:
            if out == in_real:
                why = "it is the input"
            elif _within(out, in_real):
                why = "it lies inside the input folder"
            elif _within(in_real, out):
                why = "it contains the input"
            else:
                continue
            raise OutputError(f"refusing to write {os.fspath(path)!r}: {why} {os.fspath(item)!r}; "
                              "segmint never writes over its own input; choose another output path")
    _check_hard_links(path, inputs)


def check_distinct(paths):
    """Refuse two outputs of one call that are the same path or lie one inside the other."""
    paths = [p for p in paths if p is not None]
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            ra, rb = _real(a), _real(b)
            if ra == rb or _within(ra, rb) or _within(rb, ra):
                raise OutputError(f"two outputs overlap: {os.fspath(a)!r} and {os.fspath(b)!r}; "
                                  "give each output its own path")


def _check_hard_links(path, inputs):
    try:
        st = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return
    key = (st.st_dev, st.st_ino)
    for item in inputs or ():
        if item is None:
            continue
        for file in _files_of(item):
            try:
                other = os.stat(file)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == key:
                raise OutputError(f"refusing to write {os.fspath(path)!r}: it is a hard link to the input "
                                  f"{os.fspath(file)!r}; choose another output path")


def _files_of(item):
    item = os.fspath(item)
    if not os.path.isdir(item):
        return [item]
    return [os.path.join(root, name) for root, _, names in os.walk(item) for name in names]


def _real(path):
    # realpath alone: it resolves each symlink before the '..' after it, as the system does
    # (abspath first would drop 'link/..' as text and name another folder)
    return os.path.realpath(os.fspath(path))


def _place(path):
    """Where the name itself lives: its folder resolved, the last name kept (a symlink at the
    destination is replaced, not followed)."""
    path = os.fspath(path)
    parent, name = os.path.split(path.rstrip(os.sep) or os.sep)
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(parent or os.curdir), name)


def _within(inner, outer):
    """True when real path ``inner`` lies strictly inside real path ``outer``."""
    outer = outer.rstrip(os.sep) + os.sep
    return inner != outer.rstrip(os.sep) and inner.startswith(outer)


# -- folders segmint wrote ----------------------------------------------------------------------
def marker_bytes(parts):
    """The marker file of a Parquet dataset folder holding ``parts`` (file names)."""
    doc = {"format": MARKER_FORMAT, "version": MARKER_VERSION, "parts": sorted(parts)}
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


def dataset_parts(folder):
    """What replacing ``folder`` would remove: ``[]`` for an empty folder, else the marker and
    the part files it lists. Raises :class:`OutputError` for any other folder."""
    folder = Path(folder)
    names = os.listdir(folder)
    if not names:
        return []
    parts = _read_marker(folder / MARKER) if MARKER in names else None
    if parts is None:
        raise OutputError(f"{str(folder)!r} is a folder segmint did not write (it holds {_count(names)} "
                          f"and no {MARKER}), e.g. {sorted(names)[0]!r}; segmint replaces only folders "
                          f"it wrote; {_ADVICE}")
    allowed = set(parts) | {MARKER}
    foreign = sorted(n for n in names if n not in allowed or not _is_plain_file(folder / n))
    if foreign:
        raise OutputError(f"{str(folder)!r} holds {_count(foreign)} segmint did not write, e.g. "
                          f"{foreign[0]!r}; segmint replaces a dataset folder only while it holds "
                          f"nothing else; {_ADVICE}")
    return [n for n in names if n in allowed]


def _read_marker(path):
    """The part names a marker lists, or None when it is not a marker segmint wrote."""
    try:
        if not _is_plain_file(path) or os.path.getsize(path) > _MARKER_MAX_BYTES:
            return None
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT:
        return None
    parts = doc.get("parts")
    if not isinstance(parts, list) or not all(isinstance(p, str) and _plain_name(p) for p in parts):
        return None
    return parts


def _plain_name(name):
    # a part is a file right in the folder: no separators, no '..', no hidden names
    return (name and "/" not in name and os.sep not in name and not name.startswith(".")
            and name.endswith(".parquet") and name != MARKER)


def _is_plain_file(path):
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _count(names):
    return f"{len(names)} file{'s' if len(names) != 1 else ''}"


def remove_dataset(folder, names):
    """Remove ``names`` (a dataset's marker and parts) from ``folder``, then the folder if empty.

    Anything else found there is kept, with a warning naming the folder.
    """
    folder = Path(folder)
    for name in names:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        warnings.warn(f"kept {str(folder)!r}: files appeared in the old dataset while it was being "
                      "replaced; segmint removes only the files it wrote", RuntimeWarning, stacklevel=3)


# -- which outputs were committed -----------------------------------------------------------------
_lock = threading.Lock()
_commits = {}  # place of the destination -> [temporary path, committed?]


def commit_started(path, tmp):
    """Note that ``tmp`` is about to be renamed to ``path`` (see :func:`was_written`)."""
    with _lock:
        _commits[_place(path)] = [os.fspath(tmp), False]


def commit_done(path):
    """Note that ``path`` was committed."""
    with _lock:
        entry = _commits.get(_place(path))
        if entry is not None:
            entry[1] = True


def commit_abandoned(path):
    """Note that the commit of ``path`` did not happen (its temporary was dropped)."""
    with _lock:
        _commits.pop(_place(path), None)


def was_written(path):
    """True when a writer of this process committed ``path``.

    A commit interrupted between the rename and :func:`commit_done` counts as written when the
    temporary is gone and the destination exists: the rename is what commits.
    """
    with _lock:
        entry = _commits.get(_place(path))
    if entry is None:
        return False
    tmp, done = entry
    return done or (not os.path.lexists(tmp) and os.path.lexists(path))


def forget_commits():
    """Empty the registry (the CLI does it at the start of each command)."""
    with _lock:
        _commits.clear()
