"""mypy is clean on the domain packages (core, openings, chat).

The parts live at the repository root and become `jobcast.<part>` only through setuptools'
package-dir mapping, which mypy cannot follow: the test lays out a `jobcast/` tree of links to
them, so mypy sees the same module names as the running code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("core", "openings", "chat")


def test_mypy_is_clean_on_the_domain_packages(tmp_path):
    tree = tmp_path / "src" / "jobcast"
    tree.mkdir(parents=True)
    for f in (ROOT / "jobcast").glob("*.py"):
        shutil.copy2(f, tree / f.name)
    for part in ("core", "openings", "chat", "stream", "web"):
        (tree / part).symlink_to(ROOT / part, target_is_directory=True)
    args = [a for p in CHECKED for a in ("-p", f"jobcast.{p}")]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ],
        cwd=tmp_path / "src",
        env={"MYPYPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
