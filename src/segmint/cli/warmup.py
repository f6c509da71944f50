"""``segmint warmup``: fill the caches a fresh process needs to start fast (for an image).

``segmint warmup`` compiles every kernel into Numba's cache (:func:`segmint.warmup`), records
which signatures it compiled, and compiles segmint's Python modules to bytecode, then says
where the cache is and how long it took. ``segmint warmup --check`` compiles nothing: it
says whether each recorded kernel signature would load from the cache here (exit 0) or
would compile (exit 1): see :func:`segmint.cache_status`.
"""
import os
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
    if not args.quiet:
        print("segmint warmup: compiling every kernel into Numba's cache (minutes on a cold cache) ...",
              flush=True)
    t0 = time.perf_counter()
    kernel_seconds = warmup()
    status = cache_status()
    modules, failed = _compile_bytecode()
    print(f"kernels ready in {kernel_seconds:.1f} s ({status.expected} kernel signatures): "
          f"cache {'warm' if status.warm else 'NOT warm'}, {status.reason}")
    print(f"cache: {_where(status.path)}")
    print(f"bytecode: {modules} modules" + (f" ({failed} could not be written: read-only install?)"
                                            if failed else ""))
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0 if status.warm else 1


def _where(path):
    source = "NUMBA_CACHE_DIR" if os.environ.get("NUMBA_CACHE_DIR") else "next to the package"
    return f"{path} ({source})"


def _compile_bytecode():
    """Compile segmint's modules (and its kernels') to bytecode where Python looks for it, so
    that a fresh process does not compile them from source (~150 ms of ``import segmint``).
    Returns (modules, failures)."""
    import py_compile

    import segmint
    from segmint import kernels

    roots = [os.path.dirname(segmint.__file__), *kernels.__path__]
    modules = failed = 0
    seen = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = os.path.realpath(os.path.join(folder, name))
                if not name.endswith(".py") or path in seen:
                    continue
                seen.add(path)
                try:
                    # checked-hash-free default (timestamp) pyc: Python reads it whatever
                    # PYTHONDONTWRITEBYTECODE says, and recompiles if the source changes
                    py_compile.compile(path, doraise=True)
                    modules += 1
                except (OSError, py_compile.PyCompileError):
                    failed += 1
    if failed and not modules:
        print("segmint: note: no bytecode written (read-only install)", file=sys.stderr)
    return modules, failed
