"""Every public object of the package, and every public method or property, has a docstring."""

from __future__ import annotations

import inspect
from typing import Any, List, Tuple

import etch
from etch import _etch


def _public_members(cls: type) -> List[Tuple[str, Any]]:
    return [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or inspect.isdatadescriptor(member))
    ]


def _doc(cls: type, name: str, member: Any) -> str:
    """A member's docstring; slot attributes carry theirs in a ``__slots__`` dict."""
    slots = vars(cls).get("__slots__")
    slot_doc = slots.get(name) if isinstance(slots, dict) else None
    return (getattr(member, "__doc__", None) or slot_doc or "").strip()


def test_module_and_exports_documented() -> None:
    assert etch.__doc__
    missing = []
    for name in etch.__all__:
        obj = getattr(etch, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for member_name, member in _public_members(obj):
                if not _doc(obj, member_name, member):
                    missing.append(f"{name}.{member_name}")
    assert missing == []


def test_native_classes_documented() -> None:
    missing = []
    for cls in (_etch.NativeStore, _etch.Watcher, _etch.LockGuard, _etch.WriteTxn):
        if not (cls.__doc__ or "").strip():
            missing.append(cls.__name__)
        for member_name, member in _public_members(cls):
            if not _doc(cls, member_name, member):
                missing.append(f"{cls.__name__}.{member_name}")
    for fn in (_etch.open, _etch.restore, _etch.prefix_end):
        if not (fn.__doc__ or "").strip():
            missing.append(fn.__name__)
    assert missing == []
