"""An entry's Atom id, stable forever and independent of base_url (docs/design.md, Identity).

``urn:infocode:<infoCode>`` where the entry has one, else ``urn:uuid:`` and the uuid5 of
its key. uuid5 is one-way: the store keeps each item's uuid, indexed, to find it again.
"""

from __future__ import annotations

import uuid


def key_uuid(key: str) -> str:
    """The uuid of an entry's ``urn:uuid:`` id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def atom_id(key: str, infocode: str | None) -> str:
    if infocode:
        return f"urn:infocode:{infocode}"
    return f"urn:uuid:{key_uuid(key)}"
