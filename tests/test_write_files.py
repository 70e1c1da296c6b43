"""write.files: atomic replace, no write when nothing changed, byte-stable gzip siblings."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest

from aggregator.write import files as files_module
from aggregator.write import gzip_bytes, replace_file, replace_with_gzip

OLD = 1_000_000_000 * 10**9  # ns (2001-09-09): a modification time no write would produce


def test_new_file_is_written(tmp_path: Path) -> None:
    target = tmp_path / "out" / "kejiribao.atom"  # the folder is made too
    assert replace_file(target, b"<feed/>") is True
    assert target.read_bytes() == b"<feed/>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["kejiribao.atom"]


def test_same_bytes_write_nothing(tmp_path: Path) -> None:
    target = tmp_path / "all.atom"
    target.write_bytes(b"same")
    os.utime(target, ns=(OLD, OLD))
    inode = target.stat().st_ino
    assert replace_file(target, b"same") is False
    assert target.stat().st_mtime_ns == OLD
    assert target.stat().st_ino == inode
    assert os.listdir(tmp_path) == ["all.atom"]


def test_changed_bytes_replace_the_file(tmp_path: Path) -> None:
    target = tmp_path / "all.atom"
    target.write_bytes(b"old!")  # same length, other bytes
    os.chmod(target, 0o640)
    inode = target.stat().st_ino
    assert replace_file(target, b"new!") is True
    assert target.read_bytes() == b"new!"
    assert target.stat().st_ino != inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the old mode is kept
    assert os.listdir(tmp_path) == ["all.atom"]


def test_a_failed_replace_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "all.atom"
    target.write_bytes(b"old")

    def broken(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(files_module.os, "replace", broken)
    with pytest.raises(OSError, match="disk on fire"):
        replace_file(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["all.atom"]


def test_a_reader_never_sees_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file is complete and synced before it takes the name."""
    target = tmp_path / "big.atom"
    seen: list[bytes] = []
    real_replace = os.replace

    def watching(src: str, dst: str) -> None:
        seen.append(Path(src).read_bytes())
        assert target.read_bytes() == b"a" * 10  # still the whole old file
        real_replace(src, dst)

    target.write_bytes(b"a" * 10)
    monkeypatch.setattr(files_module.os, "replace", watching)
    replace_file(target, b"b" * 100_000)
    assert seen == [b"b" * 100_000]
    assert target.read_bytes() == b"b" * 100_000


def test_gzip_sibling(tmp_path: Path) -> None:
    target = tmp_path / "kejiribao.atom"
    data = "<feed>科技日报</feed>".encode() * 50
    assert replace_with_gzip(target, data) is True
    gz = tmp_path / "kejiribao.atom.gz"
    assert gzip.decompress(gz.read_bytes()) == data
    assert gz.read_bytes() == gzip_bytes(data)
    # byte-stable: mtime 0 in the header, so nothing changes the second time
    os.utime(gz, ns=(OLD, OLD))
    assert replace_with_gzip(target, data) is False
    assert gz.stat().st_mtime_ns == OLD
    assert gz.read_bytes()[4:8] == b"\0\0\0\0"
    assert replace_with_gzip(target, data + b"!") is True
    assert gzip.decompress(gz.read_bytes()) == data + b"!"
    assert sorted(os.listdir(tmp_path)) == ["kejiribao.atom", "kejiribao.atom.gz"]


def test_a_lost_gzip_sibling_is_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "all.atom"
    replace_with_gzip(target, b"x")
    (tmp_path / "all.atom.gz").unlink()
    assert replace_with_gzip(target, b"x") is True
    assert gzip.decompress((tmp_path / "all.atom.gz").read_bytes()) == b"x"


def test_current_file_is_not_compressed_again(tmp_path: Path, monkeypatch) -> None:
    """A plain file already holding the bytes, with its .gz beside it: no gzip at all."""
    import aggregator.write.files as files

    target = tmp_path / "all.atom"
    data = "<feed>财经</feed>".encode() * 40
    assert replace_with_gzip(target, data) is True

    def no_gzip(_: bytes) -> bytes:
        raise AssertionError("compressed bytes that were already current")

    monkeypatch.setattr(files, "gzip_bytes", no_gzip)
    assert replace_with_gzip(target, data) is False
    monkeypatch.undo()
    # the .gz gone (a crash between the two renames, or someone deleted it): made again
    (tmp_path / "all.atom.gz").unlink()
    assert replace_with_gzip(target, data) is True
    assert gzip.decompress((tmp_path / "all.atom.gz").read_bytes()) == data
