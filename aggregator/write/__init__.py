"""Output writers: pure renderers to bytes, kept apart from the file replacing.

Entry… ──render_atom──▶ <category>.atom, all.atom   (atom.py)
CategoryInfo… ──render_opml / render_index──▶ index.opml, index.html   (index.py)
bytes ──replace_file / replace_with_gzip──▶ disk, atomically, only on change   (files.py)
"""

from aggregator.write.atom import (
    ALL_FEED,
    DEFAULT_LANG,
    FeedMeta,
    entry_id,
    feed_meta,
    render_atom,
)
from aggregator.write.files import gzip_bytes, replace_file, replace_with_gzip
from aggregator.write.index import render_index, render_opml

__all__ = [
    "ALL_FEED",
    "DEFAULT_LANG",
    "FeedMeta",
    "entry_id",
    "feed_meta",
    "gzip_bytes",
    "render_atom",
    "render_index",
    "render_opml",
    "replace_file",
    "replace_with_gzip",
]
