"""Why a file cannot be written (tilerun.writing): full disks, quotas, read-only folders."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import tilerun.writing as writing
from tilerun.writing import disk_full, unwritable, write_problem


def _statvfs(free: int, read_only: bool = False):  # type: ignore[no-untyped-def]
    return lambda _folder: SimpleNamespace(f_bavail=free // 4096, f_frsize=4096,
                                           f_flag=os.ST_RDONLY if read_only else 0)


def test_a_full_disk_is_named_with_the_room_left(tmp_path, monkeypatch):
    assert disk_full(tmp_path) is None  # the test machine's disk has room
    monkeypatch.setattr(writing.os, "statvfs", _statvfs(8192))
    assert disk_full(tmp_path) == f"the disk is full (8 KiB free in {tmp_path})"
    problem = write_problem(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert problem == f"the disk is full (8 KiB free in {tmp_path}); nothing was written"


@pytest.mark.parametrize("code, expected", [
    (errno.EDQUOT, "the disk quota is exceeded"),
    (errno.EROFS, "is on a read-only file system"),
    (errno.EACCES, "cannot write (Permission denied)"),
])
def test_write_problems_are_named(tmp_path, code, expected):
    assert expected in write_problem(OSError(code, os.strerror(code)), tmp_path)


def test_a_read_only_file_system_is_named_before_any_work(tmp_path, monkeypatch):
    assert unwritable(tmp_path) is None
    monkeypatch.setattr(writing.os, "statvfs", _statvfs(2**30, read_only=True))
    assert unwritable(Path(tmp_path)) == f"folder {tmp_path} is on a read-only file system"
