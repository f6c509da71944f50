"""JSON and YAML documents (rule sets, feature specs, windows, RFM boundaries) as plain data.

These documents come from users and from other people's files, so reading one is bounded:

- at most :data:`MAX_BYTES` bytes, read from a regular file only (``/dev/zero`` never ends);
- UTF-8 only (a UTF-8 byte order mark is accepted): a latin-1 or UTF-16 file is refused with
  a message saying so, instead of a ``UnicodeDecodeError`` or a page of mojibake;
- containers nest at most :data:`MAX_DEPTH` deep (JSON nested 100,000 deep made Python's
  parser raise ``RecursionError``);
- integers have at most :data:`MAX_INT_DIGITS` digits (Python refuses to parse more than 4,300
  digits with a ``ValueError`` that names no position);
- YAML aliases may not expand the document beyond :data:`MAX_NODES` nodes, nor be recursive.
  Aliases are kept (``<<: *defaults`` is a common way to share an owner or a purpose between
  segments) but the *expanded* size is counted while composing, so a 413-byte "billion laughs"
  (``b: &b [*a, *a, ...]``, ``c: &c [*b, *b, ...]``) is refused after a few hundred nodes
  instead of expanding to gigabytes wherever the data is later printed or copied.
"""
import json
import os
import stat

MAX_BYTES = 16 * 2 ** 20      # a rule set of 30,000 segments is 2 to 5 MB
MAX_DEPTH = 64                # rule sets and specs nest 3 to 5 levels
MAX_INT_DIGITS = 40           # beyond any id or count; 10**400 is no one's inertia
MAX_NODES = 1_000_000         # expanded YAML values, lists and maps (30,000 segments: 240,000)



def short_repr(value, limit=80, max_bits=256):
    """``repr`` of a value read from a document, cut to ``limit`` characters, so that an error
    message quoting it never becomes a page (a 5,000-digit integer, a list of 10,000 items)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > max_bits:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    if isinstance(value, (list, tuple, dict)) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value):,} items"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_document(text, fmt, what, error):
    """Parse ``text`` as ``fmt`` (``"json"`` or ``"yaml"``), raising ``error`` naming ``what``.

    Parameters
    ----------
    text : str or bytes
        The document; bytes must be UTF-8 (with or without a byte order mark).
    fmt : {'json', 'yaml'}
    what : str
        What the document is, for messages (``"the rule set 'segments.yaml'"``).
    error : type
        The exception class to raise (a :class:`~segmint.errors.SegmintError` subclass).

    Returns
    -------
    object
        Plain data: dicts, lists, strings, numbers, booleans and None (YAML may also give
        dates). YAML uses a safe loader (plain data only) and needs PyYAML.

    Raises
    ------
    error
        Not valid JSON/YAML, too large, nested too deep, an integer with too many digits, too
        many YAML alias expansions, or not UTF-8.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = decode_utf8(bytes(text), what, error)
    if not isinstance(text, str):
        raise error(f"{what} must be given as text (or a file path), got {type(text).__name__}")
    if len(text) > MAX_BYTES:
        raise error(f"{what} is {len(text):,} characters long; segmint reads documents of at most "
                    f"{MAX_BYTES:,} bytes")
    if fmt == "yaml":
        data = _parse_yaml(text, what, error)
    else:
        data = _parse_json(text, what, error)
    _check_depth(data, what, error)
    return data


def read_document(path, what, error):
    """Read a ``.json``, ``.yaml`` or ``.yml`` file (anything else is read as JSON).

    The file must be a regular file of at most :data:`MAX_BYTES` bytes, in UTF-8.
    """
    path = os.fspath(path)
    text = read_text(path, f"{what} {path!r}", error)
    fmt = "yaml" if path.lower().endswith((".yaml", ".yml")) else "json"
    return parse_document(text, fmt, f"{what} {path!r}", error)


def read_text(path, what, error, limit=MAX_BYTES):
    """The UTF-8 text of the regular file ``path``, read with a bound of ``limit`` bytes.

    Raises
    ------
    SourceNotFoundError
        No such file.
    error
        A folder, a device or pipe, a file larger than ``limit``, or not UTF-8.
    """
    from .errors import SourceNotFoundError
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceNotFoundError(f"no such file: {path!r}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} is a folder; give the path of a file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} is not a regular file (a device, pipe or socket); give the path of a file")
    if info.st_size > limit:  # refused before reading a byte
        raise error(f"{what} is {info.st_size:,} bytes; segmint reads documents of at most {limit:,}")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)  # the size may change between stat and read: bound the read itself
    if len(data) > limit:
        raise error(f"{what} is larger than {limit:,} bytes; segmint reads documents of at most that size")
    return decode_utf8(data, what, error)


def decode_utf8(data, what, error):
    """``data`` decoded as UTF-8 (a leading byte order mark is dropped), or ``error`` saying so."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        # UTF-16 (and UTF-32) put NUL bytes between ASCII letters; NUL is valid UTF-8, so
        # decoding would "succeed" and the parser would fail on something unrelated
        raise error(f"{what} looks like UTF-16 or UTF-32 text; segmint reads UTF-8 only: "
                    "save the file as UTF-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line} is not "
                    "valid UTF-8; latin-1 or Windows-1252 perhaps): save the file as UTF-8") from None


# -- JSON -------------------------------------------------------------------------------------
def _parse_json(text, what, error):
    def parse_int(digits):
        if len(digits) > MAX_INT_DIGITS + 1:
            raise _HugeInt(digits)
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except _HugeInt as exc:
        at = text.find(exc.digits)
        line = text.count("\n", 0, at) + 1
        column = at - text.rfind("\n", 0, at)
        raise error(f"{what} holds an integer of {len(exc.digits):,} digits at line {line} column "
                    f"{column} ({exc.digits[:12]}...); integers have at most {MAX_INT_DIGITS} "
                    "digits") from None
    except RecursionError:  # the C parser counts its depth and stops cleanly
        raise error(f"{what} nests lists or objects too deep; at most {MAX_DEPTH} levels are "
                    "allowed") from None
    except ValueError as exc:  # anything else the number parsers refuse
        raise error(f"{what} is not valid JSON: {exc}") from None


class _HugeInt(Exception):
    def __init__(self, digits):
        super().__init__(digits[:20])
        self.digits = digits


def _check_depth(data, what, error):
    """Refuse containers nested deeper than :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise error(f"{what} nests lists or objects more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)


# -- YAML -------------------------------------------------------------------------------------
def _parse_yaml(text, what, error):
    try:
        import yaml
    except ImportError:
        from .errors import MissingExtraError
        raise MissingExtraError(f"reading {what} as YAML needs PyYAML: pip install 'segmint[yaml]' "
                                "(or write it as JSON)") from None
    loader_class = _loader_class()
    try:
        # first the events alone (libyaml's parser when PyYAML has it: fast, builds nothing),
        # to measure depth and expanded size; only then compose and construct
        _check_events(yaml.parse(text, Loader=loader_class))
        loader = loader_class(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} is not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise error(f"{what} nests lists or maps too deep; at most {MAX_DEPTH} levels are "
                    "allowed") from None
    except ValueError as exc:  # a constructor's own check (a bad date, say)
        raise error(f"{what} holds a value YAML cannot read: {exc}") from None


class _Refused(Exception):
    """A YAML document refused by a bound (turned into the caller's error class)."""


def _check_events(events):
    """Walk YAML parser events, refusing a document that nests deeper than :data:`MAX_DEPTH`
    or expands to more than :data:`MAX_NODES` values once aliases are followed, or that holds
    a recursive alias. Each alias counts the size of what it refers to, so a bomb is refused
    after a few hundred events, whatever its number of aliases."""
    import yaml
    sizes = {}     # anchor -> expanded size of its value, once complete
    open_ = []     # [anchor, size so far] of each list or map being read
    total = 0
    for event in events:
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(event.anchor)
                if size is None:
                    if any(frame[0] == event.anchor for frame in open_):
                        raise _Refused(f"the alias *{event.anchor} at {_where(event)} refers to a list "
                                       "or map that contains it (a recursive structure)")
                    continue  # an undefined alias: the loader says so
            else:
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            if open_:
                open_[-1][1] += size
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            size = 1
            if len(open_) >= MAX_DEPTH:
                raise _Refused(f"lists and maps nest more than {MAX_DEPTH} levels deep at {_where(event)}")
            open_.append([event.anchor, 1])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = open_.pop()
            if anchor is not None:
                sizes[anchor] = size
            if open_:
                open_[-1][1] += size
            continue  # counted when it started, and in its parent
        else:
            continue  # stream and document boundaries
        total += size
        if total > MAX_NODES:
            anchor = getattr(event, "anchor", None)
            raise _Refused(f"the document expands to more than {MAX_NODES:,} values (YAML aliases"
                           f"{' such as *' + anchor if anchor else ''} repeat what they refer to; near "
                           f"{_where(event)}): write the values out, or use fewer aliases")


_LOADER = None


def _loader_class():
    """PyYAML's safe loader (libyaml's when installed), refusing integers of more than
    :data:`MAX_INT_DIGITS` digits (built once, lazily: PyYAML is optional)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class BoundedLoader(base):
        def construct_yaml_int(self, node):
            digits = node.value.replace("_", "")
            if len(digits) > MAX_INT_DIGITS + 1:
                raise _Refused(f"an integer of {len(digits):,} digits at {_where(node)}; integers have "
                               f"at most {MAX_INT_DIGITS} digits")
            return super().construct_yaml_int(node)

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    _LOADER = BoundedLoader
    return _LOADER


def _one_line(exc):
    """PyYAML's message (several lines, with a snippet) as one line: what, then where."""
    parts = [p for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p]
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if not parts:
        return " ".join(str(exc).split())
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(" ".join(parts).split()) + where


def _where(event):
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"
