"""Atomic file writing: a reader never sees a half-written file, an interrupted run leaves
the previous version in place."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems, so ``path`` holds either the old or the new
    content, never a partial one. The file gets the usual permissions of a new file
    (``0o666 & ~umask``), not the private 0o600 of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path, mode = _new_temporary(path)
    try:
        write(tmp_path)
        if _mode(tmp_path) != mode:  # the writer re-created the file (safetensors does, with 0o600)
            os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def _mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return os.stat(path).st_mode & 0o7777


_TEMP_TAG = "isospike-tmp"
_TEMP_MARK = f".{_TEMP_TAG}."


def _owner(tmp: Path) -> int | None:
    """The process id in the name of a temporary file :func:`atomic_write` made
    (``.<name>.isospike-tmp.<pid>.<token><suffix>``); None for any other file."""
    head, mark, rest = tmp.name.rpartition(_TEMP_MARK)
    pid = rest.split(".", 1)[0]
    return int(pid) if mark and head.startswith(".") and len(head) > 1 and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's process (or an unknowable pid): leave its file alone
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that earlier writes into ``folder`` left behind because their
    process is gone (killed mid-write: SIGKILL, power loss), whatever file they were writing;
    returns them. Files of running processes are kept, and so is anything that cannot be listed
    or removed (a read-only folder): this is housekeeping, never an error.

    Called by every :func:`atomic_write` into the folder and by the loaders
    (:func:`isospike.load`, :func:`isospike.nir.load`) for the folder they read from."""
    removed: list[Path] = []
    try:
        candidates = sorted(Path(folder).glob(f".*{_TEMP_MARK}*"))
    except OSError:
        return removed
    for tmp in candidates:
        pid = _owner(tmp)
        if pid is None or _alive(pid):
            continue
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass
    return removed


def regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """The ``os.stat`` of ``path`` when it is a regular file (symbolic links followed), checked
    before anything opens it: opening a FIFO blocks until a writer appears, and a device or socket
    is no file to read. ``what`` names the reader in the errors (e.g. ``"isospike.load"``).

    Raises FileNotFoundError (nothing there), IsADirectoryError (a folder) and ValueError naming
    the kind of file for anything else that is not a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no file at {path}") from None
    except OSError as exc:
        raise OSError(f"{path} cannot be examined ({exc.strerror or type(exc).__name__}); {what} reads regular "
                      "files") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder; {what} reads one file")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise ValueError(f"{path} is {kind}, not a regular file; {what} reads regular files only (reading a pipe or "
                         "device could wait forever or never end): copy the data to a file first")
    return st


def _new_temporary(path: Path, attempts: int = 100) -> tuple[Path, int]:
    """Create an empty, uniquely named hidden file next to ``path``; return it and its mode.

    Like :func:`tempfile.mkstemp` (``O_EXCL``: never reuses an existing file), but the mode is
    left to the umask (``0o666 & ~umask``, what any new file gets), read back without changing
    the process umask. The name carries this process's id, so that a later write can tell a
    file left by a killed process (see :func:`remove_stale_temporaries`).
    """
    suffix = path.suffix or ".tmp"
    remove_stale_temporaries(path.parent)
    for _ in range(attempts):
        candidate = path.parent / f".{path.name}.{_TEMP_TAG}.{os.getpid()}.{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o7777
        finally:
            os.close(fd)
        return candidate, mode
    raise FileExistsError(f"could not create a temporary file next to {path} after {attempts} attempts")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    """numpy / torch scalars and arrays as plain numbers and lists; paths as strings."""
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy generic/ndarray, torch.Tensor
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format taken from ``path``'s suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda p: fig.savefig(p, format=fmt, **kwargs))
