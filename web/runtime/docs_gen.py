"""Writes docs/configuration.md from the Settings dataclass (its fields' help and defaults).

Run: `python -m jobcast.web.runtime.docs_gen`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobcast.web.runtime.settings import documented

HEADER = """# Configuration

Every setting can be given as an environment variable or as a flag of `jobcast serve`
(the flag wins). This page is generated from `web/runtime/settings.py` by
`python -m jobcast.web.runtime.docs_gen`; a test fails when the two disagree.

Each value is checked when the server starts: one that doesn't fit (a word that is not one of
the choices, a number out of range, a list item that is not an origin, an address or a codec)
stops `jobcast` with exit code 2 and one line naming the setting, the value and what it
accepts. Lists are comma-separated.

| setting | environment | flag | default | what it does |
|---|---|---|---|---|
"""


def render() -> str:
    rows = []
    for name, env, default, help_, cli in documented():
        flag = "`--" + name.replace("_", "-") + "`" if cli else "—"
        shown = "(empty)" if default == "" else f"`{default}`"
        rows.append(f"| `{name}` | `{env}` | {flag} | {shown} | {help_} |")
    return HEADER + "\n".join(rows) + "\n"


def main() -> int:
    out = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
