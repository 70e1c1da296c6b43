"""Bytes -> text: choose the character encoding before any parser sees the body.

Feeds lie about their encoding, and expat cannot read the multi-byte legacy
encodings at all, so we decide ourselves and hand the parser UTF-8. The order:

1. a byte-order mark, or the NUL pattern of UTF-16/32 without one;
2. the HTTP ``charset`` and the XML declaration, strong (multi-byte) labels
   before weak single-byte ones, each tried strictly; a single-byte label on a
   body that is valid UTF-8 with non-ASCII text is a lie: read UTF-8;
3. nothing usable declared: UTF-8 if valid, else charset-normalizer, which
   prefers windows-1252 among equally good Western guesses.

Labels are read as browsers read them (WHATWG Encoding): GB2312/GBK as
GB18030, Big5 as cp950 (then Big5-HKSCS), Latin-1/ASCII as windows-1252.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

#: labels whose real-world content is a superset encoding (WHATWG Encoding §4.2)
_ALIASES: dict[str, tuple[str, ...]] = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "gb_2312": ("gb18030",),
    "csgb2312": ("gb18030",),
    "x-gbk": ("gb18030",),
    "euc-cn": ("gb18030",),
    "cp936": ("gb18030",),
    "chinese": ("gb18030",),
    "iso-ir-58": ("gb18030",),
    "big5": ("cp950", "big5hkscs"),
    "big-5": ("cp950", "big5hkscs"),
    "cn-big5": ("cp950", "big5hkscs"),
    "csbig5": ("cp950", "big5hkscs"),
    "x-x-big5": ("cp950", "big5hkscs"),
    "big5-hkscs": ("big5hkscs",),
    "shift_jis": ("cp932",),
    "shift-jis": ("cp932",),
    "sjis": ("cp932",),
    "x-sjis": ("cp932",),
    "euc-kr": ("cp949",),
    "ks_c_5601-1987": ("cp949",),
    "iso-8859-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "latin-1": ("cp1252", "latin-1"),
    "l1": ("cp1252", "latin-1"),
    "us-ascii": ("cp1252", "latin-1"),
    "ascii": ("cp1252", "latin-1"),
    "windows-1252": ("cp1252", "latin-1"),
    "unicode-1-1-utf-8": ("utf-8",),
    "utf8": ("utf-8",),
}

_XML_DECL_ENCODING = re.compile(
    rb"<\?xml\s[^>]{0,200}?encoding\s*=\s*[\"']\s*([A-Za-z0-9._:()-]{1,40})\s*[\"']"
)
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A body as text, with how we got there."""

    text: str  #: without the byte-order mark
    encoding: str  #: Python codec name actually used
    declared: str | None  #: the label the document or HTTP gave, if any
    warnings: tuple[str, ...] = ()


def charset_from_content_type(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value."""
    if not content_type:
        return None
    m = _CHARSET_PARAM.search(content_type)
    return m.group(1).strip().lower() if m else None


def declared_xml_encoding(body: bytes) -> str | None:
    """The ``encoding`` of the XML declaration, wherever the prolog puts it."""
    m = _XML_DECL_ENCODING.search(body, 0, 4096)
    return m.group(1).decode("ascii").lower() if m else None


def codecs_for_label(label: str) -> tuple[str, ...]:
    """Python codecs to try for an encoding label; empty when the label is unknown."""
    label = label.strip().lower()
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        return (codecs.lookup(label).name,)
    except LookupError:
        return ()


def decode_body(body: bytes, content_type: str | None = None) -> Decoded:
    """Decode a feed or JSON body; never fails (the last resort replaces bad bytes)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return Decoded(body[len(bom) :].decode(codec, "replace"), codec, codec)
    wide = _sniff_wide(body)
    if wide:
        return Decoded(body.decode(wide, "replace"), wide, None)

    http_label = charset_from_content_type(content_type)
    xml_label = declared_xml_encoding(body)
    warnings: list[str] = []
    candidates: list[str] = []
    for label in (http_label, xml_label):
        if label is None:
            continue
        found = codecs_for_label(label)
        if not found:
            warnings.append(f"encoding: unknown label {label!r}, sniffing instead")
        elif found[0].startswith(("utf-16", "utf-32")):
            # Real UTF-16/32 was caught above by its BOM or NULs: the label is stale.
            warnings.append(f"encoding: declared {label} but the bytes are not, sniffing instead")
            continue
        candidates.extend(c for c in found if c not in candidates)
    declared = http_label or xml_label

    if candidates:
        if any(_single_byte(c) for c in candidates) and _utf8_with_non_ascii(body):
            if "utf-8" not in candidates:
                warnings.append(f"encoding: declared {declared} but the bytes are UTF-8")
            candidates.insert(0, "utf-8")
        candidates.sort(key=_single_byte)  # stable: strong labels first, order kept
        for codec in candidates:
            try:
                return Decoded(body.decode(codec), codec, declared, tuple(warnings))
            except UnicodeDecodeError:
                continue
        first = candidates[0]
        text = body.decode(first, "replace")
        if text.count("\ufffd") <= max(2, len(text) // 1000):
            warnings.append(f"encoding: a few bytes are not {first}, replaced")
            return Decoded(text, first, declared, tuple(warnings))
        warnings.append(f"encoding: the bytes are not {declared}, sniffing instead")

    codec, text = _sniff(body)
    return Decoded(text, codec, declared, tuple(warnings))


def _single_byte(codec: str) -> bool:
    """True for codecs that decode (almost) any byte string, so prove nothing."""
    try:
        return codecs.lookup(codec).name in _SINGLE_BYTE
    except LookupError:
        return False


_SINGLE_BYTE = {
    codecs.lookup(name).name
    for name in (
        *(f"cp125{i}" for i in range(9)),
        *(f"iso8859-{i}" for i in (1, *range(2, 12), *range(13, 17))),
        *("koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp437", "cp850", "cp866"),
    )
}


def _utf8_with_non_ascii(body: bytes) -> bool:
    if not _NON_ASCII.search(body):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _sniff_wide(body: bytes) -> str | None:
    """UTF-16/32 without a BOM, from where the NUL bytes fall (XML 1.0 Appendix F)."""
    head = body[:1024]
    if len(head) < 4 or b"\x00" not in head[:4]:
        return None
    if head.startswith(b"\x00\x00\x00") and head[3:4] != b"\x00":
        return "utf-32-be"
    if head[1:4] == b"\x00\x00\x00" and head[0:1] != b"\x00":
        return "utf-32-le"
    head = head[: len(head) // 2 * 2]
    even, odd = head[0::2], head[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if even_nul > 0.3 and odd_nul < 0.05:
        return "utf-16-be"
    if odd_nul > 0.3 and even_nul < 0.05:
        return "utf-16-le"
    return None


def _sniff(body: bytes) -> tuple[str, str]:
    """No usable label: UTF-8 when valid, else charset-normalizer's best guess."""
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    results = from_bytes(body[:200_000])
    best = results.best()
    if best is None:
        return "cp1252", body.decode("cp1252", "replace")
    codec = best.encoding
    for match in results:
        # Equally good Western guesses tie (cp1250, cp1252, iso8859_x ...): pick
        # windows-1252, the web's default for unlabelled Latin text.
        if (
            "cp1252" in match.could_be_from_charset
            and match.chaos <= best.chaos + 0.01
            and match.coherence >= best.coherence - 0.01
        ):
            codec = "cp1252"
            break
    return codec, body.decode(codec, "replace")
