"""What each command reads and writes, and the checks on its outputs made before any work."""
import os

DEMO_FILES = ("customers.arrow", "model.seg", "segments.parquet")
DEMO_MARKER = "_segmint_demo.json"


def output_paths(args):
    """``[(path, kind)]`` of everything the command writes; kind is 'table' (Arrow/Parquet
    by suffix, or a dataset folder) or 'file' (model, JSON)."""
    command = args.command
    if command == "demo":
        return [(os.path.join(args.dir, name), "file" if name.endswith(".seg") else "table")
                for name in DEMO_FILES] if args.dir is not None else []
    if command == "generate":
        return [(args.output, "table")] + ([(args.events, "table")] if args.events is not None else [])
    if command == "fit":
        return [(args.output, "file")]
    if command in ("score", "aggregate"):
        return [(args.output, "table")]
    if command == "rules":
        return [(args.output, "table")] if args.output is not None else []
    if command == "rfm":
        return [(args.output, "table")] + ([(args.save_boundaries, "file")]
                                           if args.save_boundaries is not None else [])
    if command == "refit":
        return [(args.output, "file")]
    if command in ("profile", "sweep", "validate", "report", "drift"):
        if args.output is None:
            return []
        return [(args.output, "table" if _is_table_path(args.output) else "file")]
    return []


def _is_table_path(path):
    """A table by its suffix (Arrow, Parquet, a folder); else a text file (JSON, Markdown, HTML)."""
    return str(path).lower().endswith((".arrow", ".feather", ".ipc", ".parquet", "/", os.sep))


def input_paths(args):
    """Every file or folder the command reads (data, model, rule, windows, boundaries, spec)."""
    command = args.command
    if command == "fit":
        spec = [args.features] if os.path.exists(args.features) else []
        return [args.data, args.rules] + spec
    if command == "score":
        return [args.model, args.data]
    if command == "rules":
        return [args.rules, args.data]
    if command == "aggregate":
        return [args.events, args.windows]
    if command == "rfm":
        return [args.data, args.boundaries]
    if command in ("profile", "validate", "report"):
        given = [args.data]
        if args.segments is not None and os.path.exists(args.segments):
            given.append(args.segments)  # a model, rule file or table of segments
        for spec in (getattr(args, "features", None), getattr(args, "sweep_features", None)):
            if spec is not None and os.path.exists(spec):
                given.append(spec)
        if getattr(args, "previous", None) is not None:
            given.append(args.previous)
        return given
    if command == "drift":
        return [p for p in (args.data, args.model, args.previous) if p is not None]
    if command == "refit":
        return [args.model, args.data]
    if command == "sweep":
        return [args.data] + ([args.features] if os.path.exists(args.features) else [])
    return []


def check_paths(args, planned):
    """Refuse, up front, an output that is, contains or lies inside an input or another output,
    and ``""``, ``.``, the current or home folder, or a folder segmint did not write."""
    from ..io.outputs import check_distinct, check_output
    from ..io.writers import check_table_output

    if args.command == "demo" and args.dir is not None:
        check_demo_dir(args.dir)
        if not os.path.isdir(args.dir):
            return  # a new folder: nothing in it to protect
    inputs = [p for p in input_paths(args) if p is not None]
    for path, kind in planned:
        if kind == "table":
            check_table_output(path, inputs=inputs)
        else:
            check_output(path, inputs=inputs)
    check_distinct([path for path, _ in planned])


def check_demo_dir(folder):
    """The demo's folder must be new, empty, or a folder an earlier demo wrote (its marker and
    nothing but the demo's files): the demo replaces customers.arrow, model.seg and
    segments.parquet there, and must not replace a user's files of those names."""
    import json

    from ..errors import OutputError
    if not str(folder).strip():
        raise OutputError("the demo folder is empty; name a new or empty folder with --dir")
    if not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise OutputError(f"--dir {folder!r} is not a folder")
    names = os.listdir(folder)
    if not names:
        return
    ours = False
    marker = os.path.join(folder, DEMO_MARKER)
    if os.path.isfile(marker) and os.path.getsize(marker) < 4096:
        try:
            with open(marker, "rb") as f:
                ours = json.loads(f.read().decode("utf-8")).get("format") == "segmint-demo"
        except (OSError, ValueError, AttributeError):
            ours = False
    foreign = sorted(set(names) - {DEMO_MARKER, *DEMO_FILES}) if ours else sorted(names)
    if foreign:
        raise OutputError(f"--dir {folder!r} holds {len(foreign)} file{'s' if len(foreign) > 1 else ''} "
                          f"an earlier demo did not write, e.g. {foreign[0]!r}; the demo writes "
                          f"{', '.join(DEMO_FILES)} there: name a new or empty folder")
