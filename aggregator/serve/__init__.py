"""HTTP for feed readers: the files of ``output_dir``, ``/healthz`` and ``/metrics``.

files.py   known names -> in-memory files with validators and ready-made answers
health.py  /healthz: the database and each source's health
app.py     the raw ASGI app: routing, conditional GET, gzip, HEAD
server.py  uvicorn in a thread (``start_server``) and ``aggregator serve`` (``serve_forever``)
"""

from aggregator.serve.app import FeedApp
from aggregator.serve.server import LazyStore, ServerHandle, serve_forever, start_server

__all__ = ["FeedApp", "LazyStore", "ServerHandle", "serve_forever", "start_server"]
