"""The built wheel holds every module and every entry point's plugin (scripts/wheel-smoke.sh installs and runs it)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # From a clean copy: setuptools would reuse a stale build/ directory and hide a missing package.
    source = tmp_path_factory.mktemp("src") / "llm-router"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("llm_router-*.whl")
    return zipfile.ZipFile(built)


def packages() -> list[str]:
    """The top-level packages setup.cfg ships (``[options.packages.find] include``)."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return [line.strip().rstrip("*") for line in setup["options.packages.find"]["include"].split() if line.strip()]


def test_every_source_module_is_in_the_wheel(wheel):
    shipped = set(wheel.namelist())
    top = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "examples", "scripts", "build"}
    assert top <= set(packages()), f"packages setup.cfg does not ship: {top - set(packages())}"
    sources = {
        str(p.relative_to(ROOT))
        for package in packages()
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources - shipped == set()


def test_every_entry_point_module_is_in_the_wheel(wheel):
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    plugins = [line.split("=", 1) for line in setup["options.entry_points"]["llm_router"].strip().splitlines()]
    shipped = set(wheel.namelist())
    for name, module in plugins:
        path = module.strip().replace(".", "/") + ".py"
        assert path in shipped, f"plugin {name.strip()}: {path} is not in the wheel"
    shipped_entry_points = wheel.read(next(n for n in shipped if n.endswith("entry_points.txt"))).decode()
    assert all(f"{name.strip()} = {module.strip()}" in shipped_entry_points for name, module in plugins)
