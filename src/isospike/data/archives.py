"""Data archives read in place, never installed or unpacked (``make bench-setup`` fetches them into
``~/.cache/isospike``): where one is, whether it is the published file, one member."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import IO

from isospike.errors import DatasetNotFoundError

CACHE = Path.home() / ".cache" / "isospike"


def locate_archive(archive: str | os.PathLike | None, env_var: str, filename: str, what: str,
                   fix: str) -> Path:
    """``archive``, else ``$env_var``, else ``~/.cache/isospike/<filename>``; a DatasetNotFoundError
    ("<what> not found at <path>. Fix: <fix>") when that is not a file."""
    path = Path(archive) if archive is not None else Path(os.environ[env_var]) if os.environ.get(env_var) \
        else CACHE / filename
    if not path.is_file():
        raise DatasetNotFoundError(f"{what} not found at {path}. Fix: {fix}")
    return path


def check_sha256(path: Path, expected: str, what: str, fix: str) -> None:
    """A ValueError unless the file's SHA-256 is ``expected`` (the published ``what``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise ValueError(f"{path} is not {what} (SHA-256 differs from {expected}); {fix}")


def open_member(tar: tarfile.TarFile, name: str, max_bytes: int) -> IO[bytes]:
    """Member ``name`` opened for reading (streamed from the archive): a regular file of at most
    ``max_bytes`` (else a ValueError)."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ValueError(f"{name} is missing from the archive") from None
    if not member.isfile() or member.size > max_bytes:
        raise ValueError(f"{name} is not a regular file of at most {max_bytes >> 20} MiB")
    f = tar.extractfile(member)
    assert f is not None  # a regular file
    return f
