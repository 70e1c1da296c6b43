"""A validated Config kept between runs, for the one-shot commands' start-up (issue 19).

Building pydantic's validators for the schema, reading the TOML and validating it
cost an all-304 poll of 100 sources ~0.07 G instructions of ~2.4 G (measured with and
without this cache; more with more sources). So ``load_config_cached`` keeps the
Config of a full load in a pickle, under a key of everything the load read or
depends on:

    the main file's absolute path and bytes, each included file's path and bytes,
    the config package's own source, aggregator's, pydantic's and Python's versions,
    $PYTHONTZPATH (time zones are checked against it)

and the next run whose key is equal unpickles it (the models build their validators
only when something is validated: ``defer_build``). Anything else - no cache file,
another key, a file that does not unpickle or is not the user's own - is a miss: the
full load, whose Config (or ConfigError, with every problem) is what the caller gets,
and the file is written anew. ``check-config`` and the daemon's reload never read the
cache: they validate every time.

The file lives in ``$XDG_CACHE_HOME/aggregator`` (else ``~/.cache/aggregator``; the
systemd unit points HOME at the service's cache directory), one per main config
path, written 0600 through a rename, read only when the user owns it and nobody
else may write it (unpickling runs code).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path

from pydantic.version import VERSION as PYDANTIC_VERSION

from aggregator import __version__
from aggregator.config.load import config_files, load_config
from aggregator.config.schema import Config

log = logging.getLogger("aggregator.config")

#: the layout of the pickled tuple; bump when it changes
FORMAT = 1


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aggregator``, else ``~/.cache/aggregator``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aggregator"


def cache_file(main: Path) -> Path:
    """Where the Config of the main file ``main`` (absolute) is kept."""
    name = hashlib.sha256(os.fsencode(main)).hexdigest()[:32]
    return cache_dir() / f"config-{name}.pickle"


def load_config_cached(path: str | os.PathLike[str]) -> Config:
    """``load_config(path)``, from the cache when nothing it was made from has changed."""
    main = Path(path).absolute()
    file = cache_file(main)
    context = _context()
    config = _read(file, context, main)
    if config is not None:
        return config
    read: list[tuple[Path, bytes]] = []
    config = load_config(main, read=read)  # the key: the very bytes validated
    _write(file, (_digest(context, read[:1]), _digest(b"", read[1:])), config)
    return config


def _read(file: Path, context: bytes, main: Path) -> Config | None:
    """The cached Config when its key still holds, else None (a miss, whatever the cause)."""
    try:
        with open(file, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return None
            fmt, key, config = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file is a miss
        log.debug("config cache %s not used: %s: %s", file, type(exc).__name__, exc)
        return None
    if fmt != FORMAT or not isinstance(config, Config) or config.path != main:
        return None
    now = _files([main])
    if now is None or _digest(context, now) != key[0]:
        return None
    includes = _files(config_files(main, config.aggregator.include)[0][1:])
    if includes is None or _digest(b"", includes) != key[1]:
        return None
    return config


def _write(file: Path, key: tuple[str, str], config: Config) -> None:
    """Keep ``config`` under its key; a cache that cannot be written is only slower."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".config-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump((FORMAT, key, config), f, pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, file)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.debug("config cache %s not written: %s", file, exc)


def _context() -> bytes:
    """What a valid config's Config depends on beside its files: this code and its libraries."""
    parts = [
        f"{FORMAT} {__version__} {PYDANTIC_VERSION} {sys.version}",
        os.environ.get("PYTHONTZPATH", ""),
    ]
    digest = hashlib.sha256("\0".join(parts).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.digest()


def _files(paths: list[Path]) -> list[tuple[Path, bytes]] | None:
    """Each file's path and bytes now; None when one cannot be read."""
    try:
        return [(path, path.read_bytes()) for path in paths]
    except OSError:
        return None


def _digest(prefix: bytes, files: list[tuple[Path, bytes]]) -> str:
    """A hash of each file's path and bytes, in order."""
    digest = hashlib.sha256(prefix)
    for path, data in files:
        digest.update(b"\0%d\0%s\0" % (len(data), os.fsencode(path)))
        digest.update(data)
    return digest.hexdigest()
