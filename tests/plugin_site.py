"""The example plugin (examples/plugin) installed as a user would, into a folder of its own.

`pip install --target` keeps it out of the project's virtualenv, so a process has the plugin
exactly when that folder is on its PYTHONPATH: the tests choose which processes have it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin"


def install_example_plugin(where: Path) -> Path:
    """pip-install the example plugin into `where/site` (offline: the venv's setuptools builds
    it) and return that folder."""
    source, site = where / "source", where / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site
