"""Jobcast: live job cards, Q&A chat and applications for recruitment livestreams.

The import package is `jobcast`; its parts keep their folders at the repository root
(core/, openings/, chat/, stream/, web/), mapped to `jobcast.core`, `jobcast.openings`, ...
by `[tool.setuptools] package-dir` in pyproject.toml.
"""

from __future__ import annotations

from pkgutil import extend_path

# Run from a source checkout, `import jobcast` finds this folder first (the current directory
# leads sys.path) while its parts are installed elsewhere: extend_path adds the installed
# package's folder, so `jobcast.web` still resolves.
__path__ = extend_path(__path__, __name__)
