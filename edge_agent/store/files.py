"""Files the station writes: durable (fsync) and private to the agent's user.

The data folder holds PIN hashes, the member keys and personal data (sealed, but with the
keys beside it), so it is created 0700 and every file in it 0600, whatever the process's
umask: the modes are given when a file is created and set again when it is opened, so a
store created by an older version (0644 under the usual umask) is tightened too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Literal

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "fsync_path",
    "loose_bits",
    "make_private_dir",
    "private_file",
    "tighten",
]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def fsync_path(path: Path) -> None:
    """fsync a file (its data) or a folder (the names in it, after a create or a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def loose_bits(path: Path) -> int:
    """The group and other permission bits of `path` (0 when it is private)."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def make_private_dir(directory: Path) -> Path:
    """Create `directory` (and missing parents) 0700; an existing one is tightened to 0700."""
    directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if loose_bits(directory):
        os.chmod(directory, PRIVATE_DIR)
    return directory


def tighten(*paths: Path) -> None:
    """chmod 0600 each existing file among `paths` that others can read or write."""
    for path in paths:
        try:
            if loose_bits(path):
                os.chmod(path, PRIVATE_FILE)
        except FileNotFoundError:
            continue


def private_file(path: Path, mode: Literal["a", "w"]) -> IO[str]:
    """Open a text file for appending or writing, created 0600 (and tightened if older)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
