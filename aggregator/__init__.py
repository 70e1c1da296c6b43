"""aggregator: polls feeds and news APIs, merges items by infoCode, writes Atom feeds."""

__version__ = "0.1.0"
HOMEPAGE = "https://github.com/aggregator-dev/aggregator"
USER_AGENT = f"aggregator/{__version__} (+{HOMEPAGE})"
