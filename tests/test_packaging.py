"""Packaging: every package of the source tree ships in a built (non-editable) install.

An editable install finds any folder with an ``__init__.py``; a wheel holds only the packages
pyproject.toml lists, so a folder missing from that list breaks installed copies only (as
``segmint.serve`` once did: ``segmint.Scorer`` and ``segmint warmup`` failed).
"""
import os

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


@pytest.fixture(scope="module")
def setuptools_config():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _packages_under(folder, name):
    """Dotted names of ``folder`` (as package ``name``) and every package folder below it."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        if "__init__.py" in files:
            relative = os.path.relpath(here, folder)
            found.append(name if relative == "." else ".".join([name, *relative.split(os.sep)]))
        else:
            dirs[:] = []  # a plain folder (data): nothing below it is imported as a package
    return found


def test_every_package_folder_of_segmint_is_listed_in_pyproject(setuptools_config):
    packages = _packages_under(os.path.join(ROOT, "src", "segmint"), "segmint")
    assert "segmint.serve" in packages and "segmint.pipeline.features" in packages  # the walk works
    assert sorted(set(packages) - set(setuptools_config["packages"])) == []


def test_the_kernels_folder_ships_as_segmint_kernels(setuptools_config):
    package_dir = setuptools_config["package-dir"]
    assert os.path.normpath(package_dir["segmint"]) == os.path.join("src", "segmint")
    assert os.path.normpath(package_dir["segmint.kernels"]) == "kernels"
    kernels = _packages_under(os.path.join(ROOT, "kernels"), "segmint.kernels")
    assert kernels[0] == "segmint.kernels"
    assert sorted(set(kernels) - set(setuptools_config["packages"])) == []


def test_every_listed_package_exists_where_package_dir_puts_it(setuptools_config):
    package_dir = setuptools_config["package-dir"]
    for package in setuptools_config["packages"]:
        base = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len)
        rest = package[len(base):].lstrip(".").split(".") if package != base else []
        folder = os.path.join(ROOT, package_dir[base], *rest)
        assert os.path.isfile(os.path.join(folder, "__init__.py")), package
