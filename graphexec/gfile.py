"""tf.gfile: TF1's file API over the local filesystem (graphexec reads and writes no other kind).

Failures are tf.errors classes, as TF's: a missing file is NotFoundError, copying or renaming onto an
existing file without overwrite=True is AlreadyExistsError.
"""
from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
from dataclasses import dataclass

from graphexec import api_gaps, errors

__all__ = ["Copy", "DeleteRecursively", "Exists", "FastGFile", "GFile", "Glob", "IsDirectory", "ListDirectory",
           "MakeDirs", "MkDir", "Open", "Remove", "Rename", "Stat", "Walk"]


@contextlib.contextmanager
def _as_tf_errors():
    try:
        yield
    except FileNotFoundError as exc:
        raise errors.NotFoundError(None, None, f"{exc.filename}; No such file or directory") from None
    except FileExistsError as exc:
        raise errors.AlreadyExistsError(None, None, f"{exc.filename}; File exists") from None
    except PermissionError as exc:
        raise errors.PermissionDeniedError(None, None, f"{exc.filename}; Permission denied") from None
    except NotADirectoryError as exc:
        raise errors.FailedPreconditionError(None, None, f"{exc.filename}; Not a directory") from None
    except IsADirectoryError as exc:
        raise errors.FailedPreconditionError(None, None, f"{exc.filename}; Is a directory") from None


class GFile:
    """A file object (read, write, readline, readlines, iteration, seek, tell, size, flush, close; text
    unless the mode has "b"), opened when first used as TF's is."""

    def __init__(self, name, mode="r"):
        self.name = os.fspath(name)
        self.mode = mode
        self._file = None

    def _opened(self):
        if self._file is None:
            with _as_tf_errors():
                self._file = open(self.name, self.mode)  # noqa: SIM115 - closed by close() / __exit__
        return self._file

    def read(self, n=-1):
        return self._opened().read(n)

    def readline(self):
        return self._opened().readline()

    def readlines(self):
        return self._opened().readlines()

    def write(self, data):
        self._opened().write(data)

    def seek(self, offset=None, whence=0, position=None):
        return self._opened().seek(position if offset is None else offset, whence)

    def tell(self):
        return self._opened().tell()

    def size(self):
        return Stat(self.name).length

    def flush(self):
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self):
        return iter(self._opened())

    def __next__(self):
        return next(self._opened())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


FastGFile = Open = GFile


def Exists(filename) -> bool:  # noqa: N802 - TF's names
    return os.path.exists(filename)


def IsDirectory(dirname) -> bool:  # noqa: N802
    return os.path.isdir(dirname)


def MakeDirs(dirname) -> None:  # noqa: N802
    with _as_tf_errors():
        os.makedirs(dirname, exist_ok=True)


def MkDir(dirname) -> None:  # noqa: N802
    with _as_tf_errors():
        if not os.path.isdir(dirname):
            os.mkdir(dirname)


def ListDirectory(dirname) -> list[str]:  # noqa: N802
    if not os.path.isdir(dirname):
        raise errors.NotFoundError(None, None, f"Could not find directory {dirname}")
    return sorted(os.listdir(dirname))


def Glob(filename) -> list[str]:  # noqa: N802
    patterns = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
    return sorted(path for pattern in patterns for path in _glob.glob(os.fspath(pattern)))


def Remove(filename) -> None:  # noqa: N802
    with _as_tf_errors():
        os.remove(filename)


def DeleteRecursively(dirname) -> None:  # noqa: N802
    if not os.path.exists(dirname):
        raise errors.NotFoundError(None, None, f"{dirname} not found")
    with _as_tf_errors():
        if os.path.isdir(dirname):
            shutil.rmtree(dirname)
        else:
            os.remove(dirname)


def _refuse_existing(target, overwrite) -> None:
    if not overwrite and os.path.exists(target):
        raise errors.AlreadyExistsError(None, None, "file already exists")


def Rename(oldname, newname, overwrite=False) -> None:  # noqa: N802
    _refuse_existing(newname, overwrite)
    with _as_tf_errors():
        os.replace(oldname, newname)


def Copy(oldpath, newpath, overwrite=False) -> None:  # noqa: N802
    _refuse_existing(newpath, overwrite)
    with _as_tf_errors():
        shutil.copyfile(oldpath, newpath)


@dataclass(frozen=True)
class FileStatistics:
    length: int
    mtime_nsec: int
    is_directory: bool


def Stat(filename) -> FileStatistics:  # noqa: N802
    with _as_tf_errors():
        info = os.stat(filename)
    return FileStatistics(info.st_size, info.st_mtime_ns, os.path.isdir(filename))


def Walk(top, in_order=True):  # noqa: N802
    """(directory, subdirectory names, file names) for `top` and every directory below it."""
    for directory, subdirectories, files in os.walk(top, topdown=in_order):
        yield directory, sorted(subdirectories), sorted(files)


__getattr__ = api_gaps.missing_names("gfile", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
