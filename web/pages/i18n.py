"""The pages' languages: one gettext catalogue for templates and JavaScript, zh-CN and English.

Msgids are English; web/pages/locale/{zh_CN,en}/LC_MESSAGES/messages.po hold the translations. The
.po files are read at start-up with Babel (no compiled .mo files to go stale, nothing to build
after `pip install -e .`). Templates call `_()` through jinja2's i18n extension; the strings
that JavaScript shows are found by extracting `_("...")` calls from web/pages/static/*.js, and each
page embeds the dictionary for its language as JSON in a data- attribute.

The language follows the `jc_lang` cookie (set by the switch, `/lang/{code}`), else the
browser's Accept-Language, else zh-CN.

`python -m jobcast.web.pages.i18n update` re-extracts every msgid and merges it into both .po files;
`python -m jobcast.web.pages.i18n check` lists msgids without a translation.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import orjson
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "jc_lang"
LANG_NAMES = {"zh-CN": "中文", "en": "English"}
_DIRS = {"zh-CN": "zh_CN", "en": "en"}
WEB = Path(__file__).parent
LOCALE = WEB / "locale"
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
DOMAIN = "messages"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHOD_MAP = [("**.html", "jinja2"), ("**.js", "javascript")]
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "silent": "false"}


def N_(message: str) -> str:
    """Mark `message` for the catalogue where it is translated later (a table of msgids
    that code picks from at run time): `update` and `check` find it."""
    return message


def po_path(lang: str) -> Path:
    return LOCALE / _DIRS[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=_DIRS[lang], domain=DOMAIN)


class Translations:
    """msgid -> text for one language; a missing or empty translation falls back to the msgid."""

    def __init__(self, lang: str, messages: dict[str, str]) -> None:
        self.lang = lang
        self.messages = messages

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)


def _messages(catalog: Catalog) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in catalog:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple):
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            for mid, s in zip(m.id, strings, strict=False):
                if s:
                    out[mid] = s
        elif m.string:
            out[m.id] = str(m.string)
    return out


@functools.cache
def translations() -> dict[str, Translations]:
    return {lang: Translations(lang, _messages(read_catalog(lang))) for lang in LANGS}


def extract(kind: str = "all") -> dict[str, list[str]]:
    """msgid -> where it is used ("web/pages/static/live.js:12"), from templates, scripts
    and/or the Python code under web/ (`kind`: all, templates, js or py)."""
    found: dict[str, list[str]] = {}
    dirs: list[tuple[Path, list[tuple[str, str]]]] = []
    if kind in ("all", "templates"):
        dirs.append((TEMPLATES, [("**.html", "jinja2")]))
    if kind in ("all", "js"):
        dirs.append((STATIC, [("**.js", "javascript")]))
    if kind in ("all", "py"):  # the server's own texts (calendar files, notices, the report)
        dirs.append((WEB.parent, [("**.py", "python")]))
    for base, method_map in dirs:
        for filename, lineno, message, _comments, _ctx in extract_from_dir(
            str(base),
            method_map=method_map,
            options_map={"**.html": JINJA_OPTIONS},
            keywords=KEYWORDS,
        ):
            ids = message if isinstance(message, tuple) else (message,)
            for mid in ids:
                if mid:
                    where = (base.relative_to(WEB.parent.parent) / filename).as_posix()
                    found.setdefault(mid, []).append(f"{where}:{lineno}")
    return found


@functools.cache
def js_msgids() -> dict[str, frozenset[str]]:
    """Script file name -> the msgids it uses."""
    by_file: dict[str, set[str]] = {}
    for mid, places in extract("js").items():
        for place in places:
            by_file.setdefault(Path(place.rsplit(":", 1)[0]).name, set()).add(mid)
    return {name: frozenset(ids) for name, ids in by_file.items()}


@functools.cache
def js_dictionary(lang: str, scripts: tuple[str, ...] | None = None) -> str:
    """The JSON dictionary a page embeds for its scripts: msgid -> text in `lang`.

    Only the strings of `scripts` (all scripts when None), and only those whose text differs
    from the msgid: scripts fall back to the msgid itself."""
    t = translations()[lang]
    files = js_msgids()
    ids: set[str] = set()
    for name in scripts if scripts is not None else tuple(files):
        ids |= files.get(name, frozenset())
    out = {mid: t.gettext(mid) for mid in sorted(ids)}
    return orjson.dumps({k: v for k, v in out.items() if v != k}).decode()


def page_lang(request: Any) -> str:
    """The language of a request's pages (and of a viewer's default name in the chat)."""
    return negotiate(request.headers.get("Accept-Language"), request.cookies.get(LANG_COOKIE))


def negotiate(accept_language: str | None, cookie: str | None = None) -> str:
    """The page language: the cookie if valid, else the best Accept-Language match."""
    if cookie in LANGS:
        return cookie  # type: ignore[return-value]
    if not accept_language:
        return DEFAULT_LANG
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        tag = tag.strip().lower()
        lang = "zh-CN" if tag.startswith("zh") else "en" if tag.startswith("en") else None
        if lang and q > 0:
            choices.append((-q, i, lang))
    return min(choices)[2] if choices else DEFAULT_LANG


@jinja2.pass_context
def _gettext(ctx: jinja2.runtime.Context, message: str) -> str:
    return translations()[ctx.get("lang", DEFAULT_LANG)].gettext(message)


@jinja2.pass_context
def _ngettext(ctx: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return translations()[ctx.get("lang", DEFAULT_LANG)].ngettext(singular, plural, n)


def install(env: jinja2.Environment) -> None:
    """Give `env` `_`/gettext/ngettext that translate into the render context's `lang`."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]


def missing(lang: str, msgids: Iterable[str]) -> list[str]:
    """Msgids without a non-empty, non-fuzzy translation in `lang`."""
    have = _messages(read_catalog(lang))
    return sorted(m for m in msgids if not have.get(m))


def update() -> None:
    """Merge every extracted msgid into both .po files (new ones get an empty msgstr)."""
    found = extract()
    for lang in LANGS:
        path = po_path(lang)
        old = read_catalog(lang) if path.exists() else Catalog(locale=_DIRS[lang])
        new = Catalog(
            locale=_DIRS[lang],
            domain=DOMAIN,
            project="Jobcast",
            version="1",
            fuzzy=False,
            creation_date=old.creation_date,
            revision_date=old.creation_date,
            header_comment=f"# {LANG_NAMES[lang]}: texts of web/pages/templates and static.",
        )
        for mid, places in sorted(found.items()):
            prev = old.get(mid)
            string = prev.string if prev is not None else ""
            if not string and lang == "en":
                string = mid
            locs = sorted({p.rsplit(":", 1)[0] for p in places})
            new.add(mid, string, locations=[(loc, None) for loc in locs])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, new, width=100, sort_output=True, include_lineno=False)


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "update":
        update()
    found = extract()
    bad = 0
    for lang in LANGS:
        for mid in missing(lang, found):
            print(f"{lang}: no translation for {mid!r}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
