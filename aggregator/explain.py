"""``aggregator explain``: the versions behind one entry, as text for people."""

from __future__ import annotations

from aggregator.store.provenance import Provenance


def explanation(found: Provenance) -> list[str]:
    """The lines ``aggregator explain`` prints for one entry."""
    lines = [
        f"entry {found.atom_id}",
        f"  key    {found.key}",
        f"  title  {found.title}",
        f"  link   {found.link or '-'}",
        f"  {len(found.versions)} version(s):",
    ]
    width = max(len(v.source_id) for v in found.versions) if found.versions else 0
    for v in found.versions:
        seen = v.first_seen.isoformat(timespec="seconds")
        lines.append(f"  - {v.source_id:<{width}}  {seen}  {v.rule}")
        lines.append(f"      title {v.title}")
        lines.append(f"      link  {v.link or '-'}")
        if v.key != found.key:
            lines.append(f"      key   {v.key}")
    return lines
