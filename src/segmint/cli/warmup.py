"""``segmint warmup``: fill the caches a fresh process needs to start fast (for an image).

``segmint warmup`` compiles every kernel into Numba's cache (:func:`segmint.warmup`), records
which signatures it compiled, and compiles segmint's Python modules to bytecode, then says
where the cache is and how long it took. ``segmint warmup --check`` compiles nothing: it
says whether each recorded kernel signature would load from the cache here (exit 0) or
would compile (exit 1): see :func:`segmint.cache_status`.

Bytecode is not written when Python is told not to (``PYTHONDONTWRITEBYTECODE``, ``-B``)
unless ``--bytecode`` is given. The command warns when the cache folder is writable only by
its owner: Numba uses a cache folder only if the process can write to it, so a service
running as another user than the one that warmed up (root in an image build) would skip
the cache and compile every kernel.
"""
import os
import stat
import sys
import time


def run(args):
    """Run ``segmint warmup [--check]``; returns the exit status (``--check``: 0 warm, 1 cold)."""
    from .._warmup import cache_status, warmup

    if args.check:
        status = cache_status()
        print(f"segmint kernel cache {'warm' if status.warm else 'cold'}: {status.reason}")
        print(f"cache: {_where(status.path)}")
        if status.missing and not args.quiet:
            shown = status.missing[:10]
            more = len(status.missing) - len(shown)
            print("would compile: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
        return 0 if status.warm else 1
    from ..kernels.settings import CACHE

    if not CACHE:  # nothing would be kept: say so before minutes of compiling
        print("segmint warmup: kernel caching is off (SEGMINT_NUMBA_CACHE=0): nothing to warm up; "
              "unset it to keep compiled kernels", file=sys.stderr)
        return 1
    if not args.quiet:
        print("segmint warmup: compiling every kernel into Numba's cache (minutes on a cold cache) ...",
              flush=True)
    t0 = time.perf_counter()
    kernel_seconds = warmup(n_jobs=getattr(args, "jobs", None))
    status = cache_status()
    print(f"kernels ready in {kernel_seconds:.1f} s ({status.expected} kernel signatures): "
          f"cache {'warm' if status.warm else 'NOT warm'}, {status.reason}")
    print(f"cache: {_where(status.path)}")
    warning = _owner_only_warning(status.path)
    if warning:
        print(warning, file=sys.stderr)
    print(_bytecode(force=getattr(args, "bytecode", False)))
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0 if status.warm else 1


def _where(path):
    """The cache folder and which of Numba's places it is: Numba falls back from
    ``NUMBA_CACHE_DIR`` / the package folder to a per-user cache when it cannot write there."""
    from .. import kernels

    if os.environ.get("NUMBA_CACHE_DIR") and _inside(path, os.environ["NUMBA_CACHE_DIR"]):
        source = "NUMBA_CACHE_DIR"
    elif any(_inside(path, root) for root in kernels.__path__):
        source = "next to the package"
    else:
        source = "user cache: Numba could not write to NUMBA_CACHE_DIR or next to the package"
    return f"{path} ({source})"


def _inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # other drives (Windows)
        return False


def _owner_only_warning(path):
    """One line when neither the group nor others may write to the cache folder, else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return (f"segmint warmup: warning: only its owner (uid {info.st_uid}) can write to {path}; Numba skips "
            f"a cache folder it cannot write, so a process of another user compiles every kernel: serve "
            f"as that user, or chown/chmod the folder")


def _bytecode(force=False, roots=None):
    """Write the bytecode (unless Python was told not to and ``force`` is off); its report line."""
    if sys.dont_write_bytecode and not force:
        return "bytecode: not written (PYTHONDONTWRITEBYTECODE or -B; --bytecode writes it anyway)"
    modules, failed = _compile_bytecode(roots)
    return f"bytecode: {modules} modules" + (f" ({failed} could not be written: read-only install?)"
                                             if failed else "")


def _compile_bytecode(roots=None):
    """Compile segmint's modules (and its kernels') to bytecode where Python looks for it, so
    that a fresh process does not compile them from source (~150 ms of ``import segmint``).
    ``roots``: the folders to compile (default: segmint's and its kernels'). Returns (modules,
    failures)."""
    import py_compile

    if roots is None:
        import segmint
        from segmint import kernels

        roots = [os.path.dirname(segmint.__file__), *kernels.__path__]
    modules = failed = 0
    seen = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if not name.endswith(".py"):
                    continue
                # the path Python imports from (a symlinked source gets its pyc beside the link,
                # where the import looks); the resolved one only to compile a file once
                path = os.path.abspath(os.path.join(folder, name))
                real = os.path.realpath(path)
                if real in seen:
                    continue
                seen.add(real)
                try:
                    # timestamp pycs, said explicitly: py_compile's default turns to checked
                    # hashes when SOURCE_DATE_EPOCH is set (reproducible builds), which every
                    # import then re-verifies by hashing the source; a timestamp pyc is read
                    # whatever PYTHONDONTWRITEBYTECODE says, and recompiled if the source changes
                    py_compile.compile(path, doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
                    modules += 1
                except (OSError, py_compile.PyCompileError):
                    failed += 1
    if failed and not modules:
        print("segmint: note: no bytecode written (read-only install)", file=sys.stderr)
    return modules, failed
