"""How ``FileLock`` and ``AsyncFileLock`` objects are constructed: py-filelock's rules.

* A subclass may have an ``__init__`` with a signature of its own. The documented options are taken here,
  then the subclass's ``__init__`` gets the ones it accepts (all of them if it takes ``**kwargs``), so
  ``class FilePathLock(FileLock): def __init__(self, path): super().__init__(path + ".lock")`` works, as
  virtualenv's ``_CountedFileLock`` does. A non-default option the subclass cannot accept is a
  ``TypeError``.
* ``is_singleton=True`` returns the one live instance of that class for that path: the parent directory is
  resolved (``./a``, ``sub/../a`` and a symlinked parent are one key), the last component is kept as
  written (a symlink there is its own key). Its ``__init__`` runs once. Asking again with other options
  is a ``ValueError`` that names them. Construction is serialized per class, and a forked child starts
  with an empty registry.
* Options are checked before anything is built: ``lifetime`` (validated, then ignored with a warning: a
  kernel lock cannot be broken by file age, see ``check_lifetime``), the error policies.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
import warnings
import weakref
from typing import Any, Final

__all__ = ["CLOSE_ERROR_POLICIES", "LockMeta", "canonical", "check_lifetime"]

CLOSE_ERROR_POLICIES: Final = frozenset({"default", "raise", "suppress"})


def canonical(path: str | os.PathLike[str]) -> str:
    """One key per lock file: the parent directory resolved, the final component as written."""
    parent, name = os.path.split(os.fspath(path))
    return os.path.join(os.path.realpath(parent or os.curdir), name)


def check_lifetime(lifetime: object, cls: type, *, stacklevel: int) -> None:
    """Validate a ``lifetime`` as py-filelock does, then warn that it is ignored.

    py-filelock honours ``lifetime`` only for its existence-marker locks. An age-based break of a kernel
    lock would unlink the path of a live holder's file and let the next process lock a fresh inode beside
    it: two holders (tox-dev/filelock#590). So a valid value is ignored with a ``UserWarning``, and
    ``lifetime`` always reads ``None``.
    """
    if lifetime is None:
        return
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
        msg = f"lifetime must be a finite non-negative number or None, not {type(lifetime).__name__}"
        raise TypeError(msg)
    if lifetime < 0 or (isinstance(lifetime, float) and not math.isfinite(lifetime)):
        msg = f"lifetime must be finite and non-negative, not {lifetime!r}"
        raise ValueError(msg)
    warnings.warn(
        f"lifetime is ignored for {cls.__name__}: a native OS lock cannot be broken safely by file age; "
        "only SoftFileLock supports lifetime-based expiry",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def _check_close_error_policy(policy: object) -> None:
    if policy not in CLOSE_ERROR_POLICIES:
        msg = f"close_error_policy must be 'default', 'raise', or 'suppress', got {policy!r}"
        raise ValueError(msg)


class LockMeta(type):
    """The metaclass of ``FileLock`` and ``AsyncFileLock`` (see the module docstring).

    A class sets ``_options_from`` to the class whose ``__init__`` documents the options (its lock
    family's base); each class gets its own singleton registry.
    """

    _options_from: type
    _instances: weakref.WeakValueDictionary[str, Any]
    _instances_lock: threading.RLock

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name, bases, namespace, **kwargs)
        cls._instances = weakref.WeakValueDictionary()
        cls._instances_lock = threading.RLock()
        _REGISTRIES.add(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        signature = _options_signature(cls._options_from)
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        options = dict(bound.arguments)
        del options["self"]
        extra = options.pop("kwargs", {})
        lock_file = options.pop("lock_file")
        cls._check_options(options)
        if not options.get("is_singleton"):
            return cls._build(lock_file, options, extra)
        key = canonical(lock_file)
        with cls._instances_lock:
            instance = cls._instances.get(key)
            if instance is None:
                instance = cls._build(lock_file, options, extra)
                cls._instances[key] = instance
                return instance
        _check_same_options(instance, {**options, **extra})
        return instance

    def _check_options(cls, options: dict[str, Any]) -> None:
        check_lifetime(options.get("lifetime"), cls, stacklevel=3)
        options["lifetime"] = None
        _check_close_error_policy(options.get("close_error_policy"))
        family_check = getattr(cls, "_check_family_options", None)
        if family_check is not None:
            family_check(options)

    def _build(cls, lock_file: Any, options: dict[str, Any], extra: dict[str, Any]) -> Any:
        init = inspect.signature(vars(cls).get("__init__") or cls.__init__).parameters  # type: ignore[misc]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in init.values()):
            passed = {**options, **extra}
        else:
            accepted = {
                name
                for name, p in init.items()
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            }
            defaults = _options_signature(cls._options_from).parameters
            refused = sorted(
                name
                for name, value in {**options, **extra}.items()
                if name not in accepted and (name not in defaults or value != defaults[name].default)
            )
            if refused:
                msg = f"{cls.__name__} does not support non-default lock options: {', '.join(refused)}"
                raise TypeError(msg)
            passed = {name: value for name, value in {**options, **extra}.items() if name in accepted}
        instance = super().__call__(lock_file, **passed)
        instance.__dict__["_ferrolock_construction"] = {**options, **extra}
        return instance


def _check_same_options(instance: Any, options: dict[str, Any]) -> None:
    """A singleton asked for again must be asked for with the same options (hooks: the same object)."""
    before: dict[str, Any] = instance.__dict__.get("_ferrolock_construction", {})
    differing = {
        name: (before.get(name), value) for name, value in options.items() if _differs(before.get(name), value)
    }
    if differing:
        lines = "".join(
            f"\n\t{name} (existing lock has {old!r} but {new!r} was passed)" for name, (old, new) in differing.items()
        )
        msg = "Singleton lock instances cannot be initialized with differing arguments"
        msg += f"\nNon-matching arguments: {lines}"
        raise ValueError(msg)


def _differs(old: object, new: object) -> bool:
    # Callables compare by identity: two equal hooks may close over different state.
    if callable(old) or callable(new):
        return old is not new
    return bool(old != new)


_SIGNATURES: weakref.WeakKeyDictionary[type, inspect.Signature] = weakref.WeakKeyDictionary()
_REGISTRIES: weakref.WeakSet[LockMeta] = weakref.WeakSet()


def _options_signature(family: type) -> inspect.Signature:
    """The family base's ``__init__`` signature, plus ``**kwargs`` for the options subclasses add."""
    signature = _SIGNATURES.get(family)
    if signature is None:
        parameters = list(inspect.signature(family.__init__).parameters.values())  # type: ignore[misc]
        parameters.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
        signature = _SIGNATURES[family] = inspect.Signature(parameters)
    return signature


def _forget_singletons_in_child() -> None:
    # A forked child must not share the parent's instances (nor wait on a registry lock a parent thread
    # held at the moment of the fork).
    for cls in list(_REGISTRIES):
        cls._instances = weakref.WeakValueDictionary()
        cls._instances_lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_singletons_in_child)
