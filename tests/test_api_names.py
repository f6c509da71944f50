"""One name per concept: every parameter of the public API is named in the README's table.

The table ("One name per concept" in README.md) is the contract: a parameter spelled
`` `name=` `` there may appear in a public signature; any other name fails this test, naming
the callable, so that a new function either uses the table's name for its concept or adds the
concept to the table (and the README says what it means).
"""
import inspect
import re
from pathlib import Path

import pytest

import segmint

README = Path(__file__).resolve().parents[1] / "README.md"


def table_names():
    text = README.read_text(encoding="utf-8")
    start = text.index("## One name per concept")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else None]
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)=", section))


def public_callables():
    """(qualified name, callable) for every public function, class constructor and public method
    reachable from ``segmint.__all__``."""
    seen = []
    for name in [*segmint.__all__, "open"]:  # open: public, but left out of __all__ (a builtin)
        obj = getattr(segmint, name)
        if inspect.isclass(obj):
            seen.append((f"segmint.{name}", obj.__init__))
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if inspect.isfunction(func):
                    seen.append((f"segmint.{name}.{attr}", func))
            for base in obj.__mro__[1:]:  # inherited public methods (the estimators' mixins)
                if base.__module__.startswith("segmint"):
                    for attr, member in vars(base).items():
                        if not attr.startswith("_") and inspect.isfunction(member) and attr not in vars(obj):
                            seen.append((f"segmint.{name}.{attr}", member))
        elif callable(obj):
            seen.append((f"segmint.{name}", obj))
    return seen


def parameters(func):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_readme_table_names_some_parameters():
    names = table_names()
    assert {"id_column", "as_of", "columns", "features", "batch_size", "random_state"} <= names


def test_every_public_parameter_name_is_in_the_concept_table():
    allowed = table_names()
    strays = sorted({f"{where}({p}=)" for where, func in public_callables() for p in parameters(func)
                     if p not in allowed})
    assert not strays, ("parameter names outside the README's 'One name per concept' table: "
                        + ", ".join(strays))


@pytest.mark.parametrize("old", ["customer", "seed", "output", "threads"])
def test_retired_names_are_gone_from_the_public_api(old):
    users = sorted({where for where, func in public_callables() if old in parameters(func)})
    assert not users, f"{old}= is retired (see the README's table) but {', '.join(users)} still take it"


def test_as_of_is_keyword_only_everywhere():
    positional = sorted(where for where, func in public_callables()
                        if "as_of" in inspect.signature(func).parameters
                        and inspect.signature(func).parameters["as_of"].kind is not inspect.Parameter.KEYWORD_ONLY)
    assert not positional, f"as_of must be keyword-only: {', '.join(positional)}"


def test_star_import_does_not_shadow_builtins():
    import builtins
    shadowed = sorted(n for n in segmint.__all__ if hasattr(builtins, n))
    assert not shadowed, f"from segmint import * would shadow the builtins {shadowed}"
