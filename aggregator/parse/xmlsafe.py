"""Hostile or sloppy XML -> text that no parser can be tricked with.

Run on the decoded text before feedparser sees it:

* the DOCTYPE (with its internal subset) is cut out of the prolog, so no
  external entity is fetched or read (XXE) and no entity is defined;
* every entity reference other than the five XML ones becomes safe text:
  an HTML name (``&nbsp;``) becomes its numeric reference, a name the removed
  DOCTYPE declared becomes nothing (its replacement text went with it), any
  other name stays literal text ``&name;``, and a bare ``&`` becomes
  ``&amp;``. No reference is left for any parser to expand, so billion laughs
  and quadratic blow-ups are inert even on feedparser's lenient path, which
  re-expands declared entities after expat refuses them;
* characters XML 1.0 forbids (C0 controls, U+FFFE/U+FFFF, references to
  them) are dropped;
* junk before the XML declaration (blank lines, comments, PHP warnings) is
  dropped and the declaration rewritten to say UTF-8.

Most ill-formed real feeds come out well-formed, so expat's strict parse
succeeds where it would have failed. CDATA sections, comments and processing
instructions are left as they are.
"""

from __future__ import annotations

import html.entities
import re
from dataclasses import dataclass

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

_XML_DECL = re.compile(r"<\?xml\s[^>]*?\?>|<\?xml\s[^>]*>")
_FEED_ROOT = re.compile(r"<(?:rss|feed|rdf:RDF|RDF|channel)[\s>]")
_ILLEGAL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z_][\w.:-]*")
_SPACE = re.compile(r"\s*")
#: regions whose text is not markup: left exactly as they are (unterminated: to the end)
#: (each written as "no terminator start, else one that is not the terminator": a lazy .*?
#: tried the terminator at every character, 20 us per item of a CDATA feed)
_OPAQUE = re.compile(
    r"<!\[CDATA\[[^\]]*(?:\](?!\]>)[^\]]*)*(?:\]\]>|\Z)"
    r"|<!--[^-]*(?:-(?!->)[^-]*)*(?:-->|\Z)"
    r"|<\?[^?]*(?:\?(?!>)[^?]*)*(?:\?>|\Z)"
)
# every "&" but the five XML references that are always safe: most feed bodies are escaped
# HTML (&lt;p&gt;), and a Python call per reference was most of make_safe's time
_REFERENCE = re.compile(
    r"&(?!(?:lt|gt|amp|quot|apos);)(?:(#[0-9]{1,10};|#[xX][0-9a-fA-F]{1,8};)|([A-Za-z_:][\w.:-]*);)?"
)
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_SUBSET_STOP = re.compile(r"""["'\]]|<!--""")
_DECLARED = re.compile(r"<!ENTITY\s+([A-Za-z_:][\w.:-]*)")


@dataclass(frozen=True, slots=True)
class SafeXml:
    """A document ready for feedparser: UTF-8 bytes, nothing left to expand."""

    data: bytes  #: UTF-8, starting with an XML declaration that says so
    root: str | None  #: the root element's name as written (``rdf:RDF``), None if none
    warnings: tuple[str, ...] = ()


def make_safe(text: str) -> SafeXml:
    """Scrub decoded text (see the module docstring); linear in its length."""
    warnings: list[str] = []
    text = text.lstrip("\ufeff")
    if _ILLEGAL_CHARS.search(text):
        text = _ILLEGAL_CHARS.sub("", text)
        warnings.append("xml: characters not allowed in XML removed")
    text = _drop_head_junk(text)

    prolog, root, rest, doctype = _split_prolog(text)
    declared = frozenset(_DECLARED.findall(doctype))
    if count := doctype.count("<!ENTITY"):  # a plain DOCTYPE (RSS 0.91) goes silently
        warnings.append(f"xml: DOCTYPE with {count} entity declarations removed")
    body = _fix_references(rest, declared)
    return SafeXml((XML_DECLARATION + prolog + body).encode("utf-8"), root, tuple(warnings))


def _drop_head_junk(text: str) -> str:
    """Cut whatever precedes the XML declaration, and the declaration itself."""
    decl = _XML_DECL.search(text, 0, 4096)
    if decl and not _FEED_ROOT.search(text, 0, decl.start()):
        return text[decl.end() :]
    text = text.lstrip()
    if text.startswith("<"):
        return text
    first = re.search(r"<[A-Za-z_!?]", text)
    return text[first.start() :] if first else text


def _split_prolog(text: str) -> tuple[str, str | None, str, str]:
    """(prolog without DOCTYPE, root name, the rest from the root on, the DOCTYPE)."""
    kept: list[str] = []
    removed: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("<!--", pos) or text.startswith("<?", pos):
            close = "-->" if text.startswith("<!--", pos) else "?>"
            stop = text.find(close, pos)
            stop = end if stop < 0 else stop + len(close)
            if not _XML_DECL.match(text, pos):  # a second declaration would be fatal
                kept.append(text[pos:stop] + "\n")
            pos = stop
        elif text[pos : pos + 9].upper() == "<!DOCTYPE":
            stop = _doctype_end(text, pos)
            removed.append(text[pos:stop])
            pos = stop
        elif text.startswith("<", pos) and (name := _NAME.match(text, pos + 1)):
            return "".join(kept), name.group(0), text[pos:], "".join(removed)
        else:
            nxt = text.find("<", pos + 1)  # stray text in the prolog: skip it
            if nxt < 0:
                break
            pos = nxt
    return "".join(kept), None, "", "".join(removed)


def _doctype_end(text: str, start: int) -> int:
    """Index just past ``<!DOCTYPE ... [ internal subset ] >``; the end if unterminated."""
    pos, end = start + 9, len(text)
    in_subset = False
    while pos < end:
        if in_subset:
            m = _SUBSET_STOP.search(text, pos)
            if m is None:
                return end
            token = m.group(0)
            if token == "]":
                in_subset, pos = False, m.end()
            else:
                close = "-->" if token == "<!--" else token
                stop = text.find(close, m.end())
                pos = end if stop < 0 else stop + len(close)
            continue
        ch = text[pos]
        if ch in "\"'":
            stop = text.find(ch, pos + 1)
            pos = end if stop < 0 else stop + 1
        elif ch == "[":
            in_subset, pos = True, pos + 1
        elif ch == ">":
            return pos + 1
        else:
            pos += 1
    return end


def _fix_references(text: str, declared: frozenset[str]) -> str:
    """Make every ``&`` outside CDATA/comments/PIs a reference no parser can expand."""

    def safe(m: re.Match[str]) -> str:
        return _safe_reference(m, declared)

    parts: list[str] = []
    pos = 0
    for m in _OPAQUE.finditer(text):
        parts.append(_REFERENCE.sub(safe, text[pos : m.start()]))
        parts.append(m.group(0))
        pos = m.end()
    parts.append(_REFERENCE.sub(safe, text[pos:]))
    return "".join(parts)


def _safe_reference(m: re.Match[str], declared: frozenset[str]) -> str:
    numeric, name = m.group(1), m.group(2)
    if numeric:
        digits = numeric[2:-1] if numeric[1] in "xX" else numeric[1:-1]
        code = int(digits, 16 if numeric[1] in "xX" else 10)
        return m.group(0) if _xml_char(code) else ""
    if name is None:
        return "&amp;"
    if name in _XML_ENTITIES:
        return m.group(0)
    expansion = html.entities.html5.get(name + ";")
    if expansion is not None:
        return "".join(f"&#{ord(c)};" for c in expansion)
    if name in declared:
        return ""
    return "&amp;" + name + ";"


def _xml_char(code: int) -> bool:
    """XML 1.0 ``Char`` production."""
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
