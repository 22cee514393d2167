"""Scope claims across machines: ``coord.claims(project=..., root=...)`` gives the ``LockManager``
semantics (an owner claims a set of paths; a claim on ``a/b`` covers everything below it; overlapping
claims conflict unless both are shared) on ``file://`` and ``postgresql://`` alike.

Paths are names inside a project that every host agrees on. A relative path (``"src/api"``, ``"."``
for the whole project) is such a name as it stands, whatever the current directory; an absolute path
is made relative to ``root``, the directory where this host keeps the project, and refused if it lies
outside it. ``..`` components and control characters are refused; symbolic links are not resolved
(another host could resolve them differently)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, TypedDict, cast

from ._ferrolock import CoordCancel, CoordClaim, _claims_find_conflict, _claims_live, _claims_wait_for_scope
from ._types import HolderRecord

if TYPE_CHECKING:
    from ._ferrolock import Coordinator

__all__ = ["ClaimRecord", "ClaimSpace", "CoordClaim"]

PathArg = str | os.PathLike[str]


class ClaimRecord(TypedDict):
    """A live claim: its project, its paths (``"a/b"``, ``"."`` for the whole project), its mode and
    who holds it."""

    project: str
    paths: list[str]
    mode: Literal["exclusive", "shared"]
    holder: HolderRecord


def _path_list(paths: PathArg | Iterable[PathArg]) -> list[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = []
    for item in items:
        if isinstance(item, bytes) or not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"claim paths must be str or os.PathLike[str], not {type(item).__name__}")
        path = os.fspath(item)
        if not isinstance(path, str):
            raise TypeError(f"claim paths must be str or os.PathLike[str], not {type(path).__name__}")
        out.append(path)
    return out


class ClaimSpace:
    """The scope claims of one project on one coordinator (``coord.claims(...)``).

    Args:
        coordinator: Where the claims live.
        project: A key every host agrees on (1 to 200 bytes, no control characters), so projects
            coordinated through one server never conflict.
        root: Where this host keeps the project; absolute paths are made relative to it (a relative
            ``root`` is taken from the current directory once, here). Without it, absolute paths are
            refused.
    """

    def __init__(self, coordinator: Coordinator, project: str = "default", root: PathArg | None = None) -> None:
        self._coordinator = coordinator
        self._project = project
        self._root = None if root is None else os.path.abspath(os.fspath(root))

    @property
    def project(self) -> str:
        """The project key."""
        return self._project

    @property
    def root(self) -> str | None:
        """This host's directory of the project, absolute, or ``None``."""
        return self._root

    def claim(
        self,
        paths: PathArg | Iterable[PathArg],
        *,
        shared: bool = False,
        purpose: str | None = None,
        timeout: float = -1.0,
        blocking: bool = True,
        on_lost: Callable[[], object] | None = None,
    ) -> CoordClaim:
        """A claim object for ``paths`` (one path or several, claimed all or none). Nothing is
        contacted until it is acquired (``with``, or ``acquire()``).

        Raises:
            InvalidName: a path is empty, has ``..`` or a control character, is absolute without a
                root or outside it; or the set is empty.
        """
        return CoordClaim(
            self._coordinator,
            _path_list(paths),
            project=self._project,
            root=self._root,
            shared=shared,
            purpose=purpose,
            timeout=timeout,
            blocking=blocking,
            on_lost=on_lost,
        )

    def find_conflict(self, paths: PathArg | Iterable[PathArg], *, shared: bool = False) -> ClaimRecord | None:
        """The first live claim that would conflict with claiming ``paths`` now, or ``None``."""
        found = _claims_find_conflict(self._coordinator, self._project, _path_list(paths), self._root, shared)
        return cast("ClaimRecord | None", found)

    def wait_for_scope(
        self,
        paths: PathArg | Iterable[PathArg],
        timeout: float = -1.0,
        *,
        shared: bool = False,
        cancel: CoordCancel | None = None,
    ) -> bool:
        """Wait until no live claim conflicts with ``paths`` (``True``) or ``timeout`` seconds pass
        (``False``; negative waits forever, ``0`` checks once). Woken by the conflicting claim's release
        or its owner's death (on PostgreSQL, in the server), never by polling."""
        return _claims_wait_for_scope(
            self._coordinator, self._project, _path_list(paths), timeout, self._root, shared, cancel
        )

    def live_claims(self) -> list[ClaimRecord]:
        """Every live claim of the project."""
        return cast("list[ClaimRecord]", _claims_live(self._coordinator, self._project))

    def __repr__(self) -> str:
        return f"ClaimSpace({self._project!r}, root={self._root!r})"
