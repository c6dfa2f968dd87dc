"""Release path (issue 29 item 1): one version, in vlcc/_version.py, agreed on
by the package metadata, the C header, the CLI and the changelog. `python -m
build` + `twine check` run in .ci/wheel-check (they need the network)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import vlcc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_version_has_one_source():
    v = vlcc.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", v)
    toml = _read("pyproject.toml")
    assert 'dynamic = ["version"]' in toml and 'attr = "vlcc._version.__version__"' in toml
    assert not re.search(r'^version\s*=\s*"', toml, re.M), "a second version in pyproject.toml"
    assert f'#define VLCC_VERSION_STRING "{v}"' in _read("include", "vlcc.h")


def test_changelog_names_the_version():
    text = _read("CHANGELOG.md")
    released = re.findall(r"^## \[(\d[^\]]*)\]", text, re.M)
    assert released and released[0] == vlcc.__version__, released


def test_cli_reports_the_version():
    p = subprocess.run([sys.executable, "-m", "vlcc.cli", "--version"], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stdout.strip() == f"vlcc {vlcc.__version__}", p
