"""What a moderator wants to see before the room does, and words the room never sees.

Recruitment scams in live rooms follow one pattern: move the viewer off the platform with a
phone number, a WeChat/QQ contact or a link. Messages carrying one are held for review, not
refused, because an honest question ("can I call 0571-8888 1234?") looks the same.
"""

from __future__ import annotations

import re
import unicodedata

# Mainland mobile numbers, optionally +86, written whole or in 3-4-4 groups; landlines with an
# area code; and any long digit run (QQ numbers, numbers written without a pattern).
_PHONE = re.compile(
    r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)"
    r"|(?<!\d)0\d{2,3}[\s-]?\d{7,8}(?!\d)"
    r"|\d{8,}"
)
# WeChat and QQ by name and by the usual disguises (薇信, V信, vx, 加微...).
_CONTACT = re.compile(
    r"微信|薇信|威信|徽信|维信|v信|加v|加微|微号|扣扣|企鹅号|"
    r"(?<![a-z])(?:wechat|weixin|vx|wx|qq|whatsapp|telegram)(?![a-z])"
)
_LINK = re.compile(
    r"https?://|www\.|t\.me/|"
    r"[a-z0-9-]+\s?(?:\.|。|点)\s?(?:com|cn|net|org|top|xyz|cc|io|me|info|vip|link|site|shop|"
    r"club|online|app|ly)(?![a-z])"
)


def fold(text: str) -> str:
    """The form both the filters and the blocked words compare: NFKC (full-width digits and
    letters become ASCII), casefolded."""
    return unicodedata.normalize("NFKC", text).casefold()


def squeeze(text: str) -> str:
    """`fold` without whitespace, so "w e i x i n" still reads as one word."""
    return "".join(fold(text).split())


def hold_reason(text: str) -> str | None:
    """'phone', 'contact' or 'link' when the text should wait for a moderator, else None."""
    f = fold(text)
    if _PHONE.search(f):
        return "phone"
    if _CONTACT.search(f) or _CONTACT.search(squeeze(text)):
        return "contact"
    if _LINK.search(f):
        return "link"
    return None


def normalize_word(word: str) -> str:
    """How a blocked word is stored and matched: folded, spaces removed."""
    return squeeze(word)


def find_blocked(text: str, words: list[str] | set[str]) -> str | None:
    """The first blocked word the text contains (substring match on the squeezed text)."""
    s = squeeze(text)
    for w in sorted(words):
        if w and w in s:
            return w
    return None
