"""Config: the declared keys (schema.py) and reading the files into them (load.py)."""

from aggregator.config.load import load_config, resolve_config_path
from aggregator.config.schema import (
    DEFAULT_PATHS,
    AggregatorSettings,
    CategoryConfig,
    Config,
    DetailMapping,
    Duration,
    HtmlMapping,
    Interval,
    JsonMapping,
    Limits,
    PostsSettings,
    ServerSettings,
    SourceConfig,
    parse_duration,
)

__all__ = [
    "DEFAULT_PATHS",
    "AggregatorSettings",
    "CategoryConfig",
    "Config",
    "DetailMapping",
    "Duration",
    "HtmlMapping",
    "Interval",
    "JsonMapping",
    "Limits",
    "PostsSettings",
    "ServerSettings",
    "SourceConfig",
    "load_config",
    "parse_duration",
    "resolve_config_path",
]
