"""The distribution installs one import package, `jobcast`, and nothing else top-level."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files only, so the build writes nothing into the checkout."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


@pytest.mark.slow
def test_pip_install_puts_only_jobcast_into_site_packages(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("this test reads the checkout's tracked files with git")
    src = _tracked_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = venv / "bin" / "python"
    # Built by this environment's setuptools and installed with no index and no dependencies:
    # only what this distribution itself installs.
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(src),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("jobcast-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
    )
    site = subprocess.run(
        [str(target), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    top = sorted(p.name for p in Path(site).iterdir() if p.name != "__pycache__")
    assert top == ["jobcast", "jobcast-0.1.0.dist-info"]
    pkg = Path(site) / "jobcast"
    parts = sorted(p.name for p in pkg.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert parts == ["chat", "core", "openings", "stream", "web"]
    # Templates, static files and translations travel with the pages.
    pages = pkg / "web" / "pages"
    assert (pages / "templates" / "viewer.html").is_file()
    assert (pages / "static" / "viewer.js").is_file()
    # the vendored HLS player too (a subfolder: package-data lists it on its own)
    assert (pages / "static" / "vendor" / "hls.light.min.js").is_file()
    assert (pages / "static" / "vendor" / "hls.js.LICENSE").is_file()
    assert list((pages / "locale").glob("*/LC_MESSAGES/messages.po"))
    # The installed package imports its parts with no checkout on the path.
    out = subprocess.run(
        [str(target), "-I", "-c", "import jobcast.web.pages, jobcast; print(jobcast.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip().startswith(site), out.stderr


def test_every_package_folder_is_listed_in_pyproject():
    """pyproject.toml lists the packages by hand (package-dir maps them): a new folder with an
    __init__.py that is missing there would be left out of the wheel."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    found = set()
    for name, folder in dirs.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]))
    assert found == listed
