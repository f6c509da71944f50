"""Modules imported on first use, so that ``import segmint`` pays only for what scoring needs.

``pc = lazy_import("pyarrow.compute")`` at the top of a module reads like the import it
replaces; the real import happens at the first attribute access (``pc.sum(...)``). Used for
libraries that cost tens of milliseconds to import and that the start-up path (``import
segmint``, ``segmint.load``, the first score of one customer) does not call:
``pyarrow.compute`` (~37 ms), ``pyarrow.parquet`` (~12 ms, with ``pyarrow.fs`` and ``ssl``).

The first access may come from several threads at once: ``importlib.import_module`` holds
the module's import lock, so each of them gets the fully initialised module.
"""
import importlib


class LazyModule:
    """Stands for the module ``name`` until an attribute is read, then forwards to it.

    Parameters
    ----------
    name : str
        The module's full name, e.g. ``"pyarrow.compute"``.
    """

    __slots__ = ("_name", "_module")

    def __init__(self, name):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def _load(self):
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            object.__setattr__(self, "_module", module)
        return module

    def __getattr__(self, attr):
        if attr in LazyModule.__slots__:
            # only reached while the slots are unset: copy.copy and pickle build an instance
            # without __init__ and probe it; forwarding would recurse through _load forever
            raise AttributeError(attr)
        # attributes are not copied onto the proxy: a monkeypatched module attribute (tests)
        # is seen at once, and a read costs one extra call, small beside any Arrow call
        return getattr(self._load(), attr)

    def __setattr__(self, attr, value):
        setattr(self._load(), attr, value)

    def __reduce__(self):
        # copies and pickles are proxies of the same name (a module itself does not pickle)
        return LazyModule, (self._name,)

    def __deepcopy__(self, memo):
        # defined here: deepcopy looks it up on the instance, which would import the module
        return LazyModule(self._name)

    def __delattr__(self, attr):
        # monkeypatch.setattr undoes a patch of an attribute the module did not have by deleting it
        delattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self):
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_import(name):
    """The module ``name`` itself when it is already imported, else a :class:`LazyModule`."""
    import sys

    module = sys.modules.get(name)
    return module if module is not None else LazyModule(name)
