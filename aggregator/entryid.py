"""An entry's Atom id, stable forever and independent of base_url (docs/design.md, Identity).

``urn:infocode:<infoCode>`` where the entry has one, else ``urn:uuid:`` and the uuid5 of
its key. uuid5 is one-way: the store keeps each item's uuid, indexed, to find it again.
"""

from __future__ import annotations

import uuid
from hashlib import sha1

_NAMESPACE = uuid.NAMESPACE_URL.bytes


def key_uuid(key: str) -> str:
    """The uuid of an entry's ``urn:uuid:`` id: ``uuid.uuid5(NAMESPACE_URL, key)``, made
    without the UUID object (a third of the time; every new item's row has one)."""
    raw = bytearray(sha1(_NAMESPACE + key.encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def atom_id(key: str, infocode: str | None) -> str:
    if infocode:
        return f"urn:infocode:{infocode}"
    return f"urn:uuid:{key_uuid(key)}"
