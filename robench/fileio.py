"""Atomic file writes: write a temp file beside the target, fsync, then rename.

A reader (or a crash) never sees a half-written export, checkpoint or card.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from robench.errors import RobenchError


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; the parent directory must exist."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise RobenchError(f"cannot write {path}: directory {parent} does not exist; create it or choose another path")
    if path.is_dir():
        raise RobenchError(f"cannot write {path}: it is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise RobenchError(f"cannot write {path}: {e.strerror}; check the directory's permissions") from None
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise RobenchError(f"cannot write {path}: {e.strerror}; free disk space or choose another path") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_text_file(path: Path | str, what: str) -> str:
    """A UTF-8 text file's content; missing, a directory or not UTF-8 -> one-line RobenchError
    naming ``what`` (e.g. "dataset file")."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobenchError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise RobenchError(f"{what} {path} is a directory; give a text file") from None
    except UnicodeDecodeError as e:
        raise RobenchError(not_utf8_message(path, what, e)) from None


def check_utf8(path: Path | str, what: str) -> None:
    """Refuse a file that is not UTF-8 (read in chunks: big JSON files are not held twice), for
    readers such as pyarrow's that would accept the bytes and fail later, deep inside."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                line = lines + chunk[: e.start].count(b"\n") + 1
                raise RobenchError(_utf8_text(path, what, e.reason, offset + e.start, line)) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise RobenchError(_utf8_text(path, what, e.reason, offset, lines + 1)) from None


def not_utf8_message(path: Path | str, what: str, e: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8 and how to re-encode it (Windows' cp1252 is the usual other encoding)."""
    return _utf8_text(path, what, e.reason, e.start, e.object[: e.start].count(b"\n") + 1)


def _utf8_text(path: Path | str, what: str, reason: str, byte: int, line: int) -> str:
    return (f"{what} {path} is not UTF-8 text ({reason} at byte {byte}, line {line}); re-encode it as UTF-8, "
            f"e.g. from Windows' cp1252: iconv -f cp1252 -t utf-8 {path} > utf8-{Path(path).name}")


# what a records directory (--out DIR) holds: an export must not take one of these names there
RECORD_FILES = ("run.json", "rows.json")
RECORD_SUFFIXES = (".jsonl", ".journal")


def check_output_collisions(paths: dict[str, Path | None], out: Path | None = None) -> None:
    """Every output of one command gets its own destination: refuse, before any work, two exports to
    one file, two exports on stdout (``-``), and an export that is the ``--out`` records directory or
    one of the files robench keeps in it. ``paths`` maps an option name (``csv``) to its path."""
    given = {flag: p for flag, p in paths.items() if p is not None}
    stdout = [f"--{flag}" for flag, p in given.items() if str(p) == "-"]
    if len(stdout) > 1:
        raise RobenchError(f"{' and '.join(stdout)} {'both' if len(stdout) == 2 else 'all'} write to stdout ('-'); machine output takes one format: "
                           "give the others file paths")
    seen: dict[Path, str] = {}
    records = Path(out).resolve() if out is not None else None  # resolved: ./x, x and a symlink to x are one place
    for flag, p in given.items():
        if str(p) == "-":
            continue
        where = Path(p).resolve()
        if where in seen:
            raise RobenchError(f"--{seen[where]} and --{flag} both write {p}; give each output its own file")
        seen[where] = flag
        if records is not None and where == records:
            raise RobenchError(f"--{flag} {p} is the --out records directory; give the export a file path outside it")
        if records is not None and records in where.parents and (where.name in RECORD_FILES or where.suffix in RECORD_SUFFIXES):
            raise RobenchError(f"--{flag} {p} would overwrite the records robench keeps in --out {out}; choose another file name")
