"""Display names: what a viewer may be called in the room.

A name is shown beside every message and question, so it gets the rules a message gets and
more, because it can also pretend to be someone:

- It is cleaned: control and format characters (soft hyphen, bidi marks, tag characters,
  variation selectors, the combining grapheme joiner...) and other default-ignorable code
  points are removed, and every kind of space becomes one space. What is left must hold a
  visible character: a name of Hangul fillers (U+3164), braille blanks (U+2800) or lone
  combining marks is refused (`name_invalid`), and so is one with a pile of marks on one
  letter.
- It may not carry a phone number, a WeChat/QQ contact or a link (`name_contact`, the same
  patterns messages are held for, and any domain shape), nor a word the broadcast blocks
  (`blocked_word`).
- A viewer may not look like staff (`name_reserved`): no role word (主持人, 主播, 管理员,
  官方, 客服, host, moderator, admin, official...), and not the name of a host or moderator
  account or a name staff chose in this broadcast. These are compared by their confusable
  skeleton (Unicode TR 39, through the `disarm` library, with 0/O and 1/l/I merged and
  `rn` read as `m`), so `Ноst` in Cyrillic, `H0ST`, `ｍｏｄｅｒａｔｏｒ` or `主持⼈` with a
  Kangxi radical are all caught.

Hosts and moderators choose any name that is clean and visible; names they choose are then
reserved in that broadcast.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from disarm import skeleton_key
from jobcast.chat.filters import find_blocked, hold_reason
from jobcast.core import keys
from jobcast.core.errors import Invalid
from jobcast.core.text import clean
from redis.asyncio import Redis

NAME_MAX = 24
MAX_MARKS = 3  # combining marks on one letter; more is stacking ("zalgo"), not writing

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt) plus characters that draw
# nothing although they are letters or symbols: the braille blank.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_SPACES = re.compile(r"\s+")

# Words that make a viewer look like staff. CJK words match anywhere in the name; Latin ones
# at the start of a word ("ghost" is fine, "admin123" and "小王host" are not).
ROLE_WORDS_CJK = (
    "主持人",
    "主持",
    "主播",
    "管理员",
    "管理員",
    "管理者",
    "房管",
    "超管",
    "版主",
    "官方",
    "客服",
    "工作人员",
    "工作人員",
    "系统",
    "系統",
)
ROLE_WORDS_LATIN = (
    "host",
    "moderator",
    "admin",
    "official",
    "staff",
    "support",
    "system",
    "jobcast",
)


def _is_mark(c: str) -> bool:
    return unicodedata.category(c) in ("Mn", "Me", "Mc")


def clean_name(raw: str) -> str:
    """The name as it will be shown: invisible characters removed, spaces collapsed."""
    s = _IGNORABLE.sub("", clean(raw))
    s = "".join(c for c in s if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    return _SPACES.sub(" ", s).strip()


def visible(name: str) -> bool:
    """Whether the name draws anything: a letter, digit, punctuation mark or symbol."""
    return any(unicodedata.category(c)[0] in "LNPS" for c in name if not _IGNORABLE.match(c))


def _stacked(name: str) -> bool:
    run = 0
    for c in name:
        run = run + 1 if _is_mark(c) else 0
        if run > MAX_MARKS:
            return True
    return False


def skeleton(text: str) -> str:
    """The confusable skeleton names are compared by (never shown)."""
    return skeleton_key(text, digit_policy="tr39").replace("m", "rn")


def squeezed_skeleton(text: str) -> str:
    """`skeleton` without spaces, punctuation and symbols: `h.o.s.t` reads as `host`."""
    return "".join(c for c in skeleton(text) if unicodedata.category(c)[0] in "LN")


_CJK_KEYS = tuple(sorted({squeezed_skeleton(w) for w in ROLE_WORDS_CJK}))
_LATIN = re.compile(
    "(?<![a-z])(?:" + "|".join(re.escape(skeleton(w)) for w in ROLE_WORDS_LATIN) + ")"
)


def role_word(name: str) -> bool:
    """Whether the name holds a staff role word, compared by skeleton."""
    sk = skeleton(name)
    sq = squeezed_skeleton(name)
    if any(w in sq for w in _CJK_KEYS):
        return True
    return bool(_LATIN.search(sk) or _LATIN.search(sq))


def _refuse(code: str, message: str, field: str, **extra: Any) -> Invalid:
    return Invalid(message, code=code, fields={"name": field}, extra=extra or None)


def check_shape(raw: Any) -> str:
    """Clean `raw` and check what needs no Redis: type, length, visibility, marks, contacts."""
    if not isinstance(raw, str):
        raise Invalid("name must be a string", fields={"name": "must be a string"})
    name = clean_name(raw)
    if not name or not visible(name):
        raise _refuse("name_invalid", "the name has no visible character", "nothing visible")
    if len(name) > NAME_MAX:
        raise _refuse("name_invalid", "the name is too long", f"1 to {NAME_MAX} characters")
    if _stacked(name):
        raise _refuse("name_invalid", "too many marks on one letter", "stacked marks")
    reason = hold_reason(name, strict=True)
    if reason is not None:
        raise _refuse(
            "name_contact",
            "a name may not hold a phone number, contact or link",
            f"holds a {reason}",
            reason=reason,
        )
    return name


class NameService:
    """Checks names against the broadcast's blocked words and the reserved staff names, which
    live in Redis so that every process judges a name the same."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def check(self, bid: str, raw: Any, *, staff: bool) -> str:
        """The cleaned name, or Invalid `name_invalid`, `name_contact`, `blocked_word` or
        `name_reserved`. A name staff choose is reserved in the broadcast from then on."""
        name = check_shape(raw)
        async with self.redis.pipeline(transaction=False) as p:
            p.smembers(keys.mod_words(bid))
            p.smembers(keys.USER_INDEX)
            p.smembers(keys.staff_names(bid))
            words, users, chosen = await p.execute()
        word = find_blocked(name, {_s(w) for w in words})
        if word is not None:
            raise _refuse(
                "blocked_word",
                "the name contains a blocked word",
                "contains a blocked word",
                word=word,
            )
        key = squeezed_skeleton(name)
        if staff:
            if key:
                await self.redis.sadd(keys.staff_names(bid), key)
            return name
        if role_word(name):
            raise _refuse("name_reserved", "this name is kept for staff", "reserved for staff")
        reserved = {squeezed_skeleton(_s(u)) for u in users} | {_s(c) for c in chosen}
        if key in reserved:
            raise _refuse("name_reserved", "this name is kept for staff", "reserved for staff")
        return name

    async def from_query(self, bid: str, raw: str, *, staff: bool) -> str:
        """The `name` a socket asks for when it connects, or "" (the default name) when it
        would be refused: a name stored by the page may have been fine when it was chosen."""
        if not raw:
            return ""
        try:
            return await self.check(bid, raw[: NAME_MAX * 4], staff=staff)
        except Invalid:
            return ""


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
