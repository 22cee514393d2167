"""Make ``filelock``'s public lock classes ferrolock's, at interpreter start.

The filelock-suite runner installs this module and a ``.pth`` line that imports it into the suite's
virtualenv, so every interpreter started from that virtualenv runs it before any test code: pytest itself,
``subprocess`` children (``sys.executable -c ...``) and ``multiprocessing`` spawn children. Forked children
inherit the replaced module. It does nothing unless ``FERROLOCK_FILELOCK_SHIM`` names the directory ferrolock
is imported from, which the runner sets only for the ferrolock run.

Replaced: ``filelock.FileLock``, ``UnixFileLock``, ``AsyncFileLock``, ``AsyncUnixFileLock`` and ``Timeout``
(and ``filelock.asyncio.AsyncUnixFileLock``). Everything else (SoftFileLock, the internals) stays filelock's.
Until ferrolock has an ``AsyncFileLock``, the async names become a class that refuses to be constructed, so an
async test fails instead of silently testing filelock's own class.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: filelock's original objects and their replacements, by public name (filled in when the shim is active).
ORIGINALS: dict[str, Any] = {}
REPLACEMENTS: dict[str, Any] = {}
ENV = "FERROLOCK_FILELOCK_SHIM"


class MissingAsyncFileLock:
    """Stands in for ``ferrolock.AsyncFileLock`` while ferrolock has none: every construction fails."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        msg = "ferrolock has no AsyncFileLock (the filelock suite's stand-in refuses to be used)"
        raise NotImplementedError(msg)


def active() -> bool:
    """Whether this interpreter runs with ferrolock in place of filelock."""
    return bool(REPLACEMENTS)


def original_name(value: object) -> str | None:
    """filelock's class name for a replacement (``UnixFileLock`` for ``ferrolock.FileLock``), else ``None``."""
    for name, replacement in REPLACEMENTS.items():
        if value is replacement:
            return str(ORIGINALS[name].__name__)
    return None


def _install(where: str) -> None:
    if where not in sys.path:
        sys.path.insert(0, where)
    import ferrolock
    import filelock
    import filelock.asyncio

    async_lock = getattr(ferrolock, "AsyncFileLock", MissingAsyncFileLock)
    replacements = {
        "FileLock": ferrolock.FileLock,
        "UnixFileLock": ferrolock.FileLock,
        "AsyncFileLock": async_lock,
        "AsyncUnixFileLock": async_lock,
        "Timeout": ferrolock.Timeout,
    }
    for name, replacement in replacements.items():
        ORIGINALS[name] = getattr(filelock, name)
        setattr(filelock, name, replacement)
        REPLACEMENTS[name] = replacement
    filelock.asyncio.AsyncUnixFileLock = async_lock  # type: ignore[misc]


def _install_from_environment() -> None:
    where = os.environ.get(ENV)
    if not where:
        return
    try:
        _install(where)
    except Exception as exc:
        # A process asked to run on ferrolock must not quietly run on filelock instead: stop it. (The .pth
        # machinery prints and ignores an Exception, but not a SystemExit.)
        msg = f"{ENV}={where}: cannot put ferrolock in place of filelock: {exc!r}"
        raise SystemExit(msg) from exc


_install_from_environment()
