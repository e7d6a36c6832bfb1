"""What a moderator wants to see before the room does, and words the room never sees.

Recruitment scams in live rooms follow one pattern: move the viewer off the platform with a
phone number, a WeChat/QQ contact or a link. Messages carrying one are held for review, not
refused, because an honest question ("can I call 0571-8888 1234?") looks the same.

The patterns are matched on normalised text, because scammers write around them: digits as
Chinese numerals (一三八…, 壹叁捌…) or as lookalike letters (`l38OOl38OOO`, `138 oo13 8ooo`),
信 as a heart (薇❤), 加 as a plus sign (➕V), domains with the dot bracketed, spelt out or
spaced (`evil[.]com`, `evil dot com`, `e v i l . c o m`). The normalising is narrow on
purpose: a lookalike letter only becomes a digit inside a word that already has a digit, so
"3年经验", "五险一金" or "月薪8000-12000元" stay what they are.
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
    r"微信|薇信|威信|徽信|维信|v信|加v|加微|加薇|加威|微号|扣扣|企鹅号|"
    r"(?<![a-z])(?:wechat|weixin|vx|wx|qq|whatsapp|telegram)(?![a-z])"
)
# "+V", "➕vx", "+ q": a plus sign standing for 加 in front of a contact letter.
_PLUS_CONTACT = re.compile(r"\+\s*(?:v|w|q)(?:x|q)?(?![a-z])")
_TLDS = "com|cn|net|org|top|xyz|cc|io|me|info|vip|link|site|shop|club|online|app|ly|ru|tk|biz"
_LINK = re.compile(
    r"https?://|www\.|t\.me/|"
    rf"[a-z0-9-]+\s?(?:\.|。|点)\s?(?:(?:{_TLDS})(?![a-z])|co(?![a-z-]))"
)
# Any domain shape at all (`evil.example`, `node.js`): too broad for messages, where people
# name technologies, but a display name has no business holding one.
_ANY_DOMAIN = re.compile(r"[a-z0-9-]+\s?(?:\.|。|点)\s?[a-z]{2,}")

# Digits written as Chinese numerals (lower and financial forms; 幺 is how 1 is read aloud in
# phone numbers). 十, 百 and 两 are left alone: they make amounts and ages, not digit strings.
_NUMERALS = str.maketrans(
    {
        "零": "0",
        "〇": "0",
        "一": "1",
        "幺": "1",
        "二": "2",
        "三": "3",
        "四": "4",
        "五": "5",
        "六": "6",
        "七": "7",
        "八": "8",
        "九": "9",
        "壹": "1",
        "贰": "2",
        "貳": "2",
        "叁": "3",
        "參": "3",
        "肆": "4",
        "伍": "5",
        "陆": "6",
        "陸": "6",
        "柒": "7",
        "捌": "8",
        "玖": "9",
    }
)
# Letters that pass for digits, after casefolding. Only used inside a word with a digit.
_LOOKALIKE = str.maketrans({"o": "0", "l": "1", "i": "1", "z": "2", "s": "5", "b": "6", "g": "9"})
_DIGITISH = re.compile(r"[0-9oliszbg]+")
# Hearts read as 信 (xin, like 心); the full-width and emoji plus read as 加 (jia, "add").
_HEARTS = re.compile(
    "[\u2764\u2665\u2661\u2763\U0001f493-\U0001f49f\U0001f9e1\U0001f90d\U0001f90e\U0001f5a4心]\ufe0f?"
)
_PLUS = re.compile("[\u2795\uff0b\ufe62]\ufe0f?")
# A dot in brackets, or spelt out between two words: `evil[.]com`, `evil (dot) com`, `evil dot com`.
_BRACKET_DOT = re.compile(r"\s*[\[(（【{]\s*(?:\.|。|dot|点)\s*[\])）】}]\s*")
_WORD_DOT = re.compile(r"(?<=[a-z0-9])\s+dot\s+(?=[a-z])")


def fold(text: str) -> str:
    """The form both the filters and the blocked words compare: NFKC (full-width digits and
    letters become ASCII), casefolded."""
    return unicodedata.normalize("NFKC", text).casefold()


def squeeze(text: str) -> str:
    """`fold` without whitespace, so "w e i x i n" still reads as one word."""
    return "".join(fold(text).split())


def digits_of(folded: str) -> str:
    """Chinese numerals as digits, and lookalike letters as digits inside words that hold a
    digit already (`l38ool38ooo` -> `13800138000`, `oo13` -> `0013`; `google` stays)."""
    s = folded.translate(_NUMERALS)
    return _DIGITISH.sub(
        lambda m: (
            m.group().translate(_LOOKALIKE) if any(c.isdigit() for c in m.group()) else m.group()
        ),
        s,
    )


def _contact_form(text: str) -> str:
    """Folded, with hearts as 信 and the emoji or full-width plus as `+`."""
    return fold(_HEARTS.sub("信", _PLUS.sub("+", text)))


def _link_form(folded: str) -> str:
    return _WORD_DOT.sub(".", _BRACKET_DOT.sub(".", folded))


def hold_reason(text: str, *, strict: bool = False) -> str | None:
    """'phone', 'contact' or 'link' when the text should wait for a moderator, else None.

    `strict` (display names) counts every domain shape as a link, not only known TLDs.
    """
    f = fold(text)
    if _PHONE.search(f) or _PHONE.search(digits_of(f)):
        return "phone"
    c = _contact_form(text)
    squeezed = "".join(c.split())
    if _CONTACT.search(c) or _CONTACT.search(squeezed) or _PLUS_CONTACT.search(c):
        return "contact"
    link = _link_form(f)
    links = (_LINK, _ANY_DOMAIN) if strict else (_LINK,)
    for pattern in links:
        if pattern.search(link) or pattern.search("".join(link.split())):
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
