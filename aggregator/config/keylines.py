"""Where a key path stands in a TOML file, for messages: tomllib keeps no positions."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path


class KeyLines:
    """Maps dotted key paths (``sources[1].json.items``) to their line in a TOML file.

    tomllib keeps no positions, so this walks the text once: table headers set
    the prefix, ``key =`` lines record prefix + key. Good enough for messages.
    The walk happens on the first ``find()``: a valid config never needs it.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def lines(self) -> dict[str, int]:
        lines: dict[str, int] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return lines
        counters: dict[str, int] = {}
        prefix = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).replace('"', "").replace("'", "")
                if header.group(1) == "[[":
                    counters[name] = counters.get(name, -1) + 1
                    prefix = f"{name}[{counters[name]}]"
                    lines.setdefault(name, number)
                else:
                    head, _, tail = name.partition(".")
                    lines.setdefault(head, number)  # [category.x] is reported as `category`
                    prefix = (
                        f"{head}[{counters[head]}].{tail}" if head in counters and tail else name
                    )
                lines.setdefault(prefix, number)
                continue
            key = self._KEY.match(line)
            if key:
                name = key.group(1).replace('"', "").replace("'", "")
                lines.setdefault(f"{prefix}.{name}" if prefix else name, number)
        return lines

    def find(self, key: str) -> int | None:
        """The line of ``key``, else of its nearest enclosing key or table."""
        key = key.replace(".json_.", ".json.").replace(".json_", ".json")
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else ""
        return None
