"""The transaction builder, as python-etcd3's ``etcd.transactions``.

``store.transactions.value(key) == b"x"`` is a :class:`Compare`; ``store.transactions.put(...)``,
``.get(...)``, ``.delete(...)`` and ``.txn(...)`` are operations for
:meth:`etch.Store.transaction`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Type, Union

KeyLike = Union[bytes, bytearray, str]


def _lease_id(lease: Any) -> int:
    """A lease argument (None, a Lease, or an id) as an id (0 for none)."""
    if lease is None:
        return 0
    lease_id = getattr(lease, "id", lease)
    if isinstance(lease_id, bool) or not isinstance(lease_id, int):
        raise TypeError(f"lease must be a Lease, an int id or None, not {type(lease).__name__}")
    return lease_id


class Compare:
    """One condition of a transaction: ``target(key) <op> operand``."""

    __slots__ = {
        "key": "The key compared (or the start of the range).",
        "range_end": "End of the range compared, or None for the single key.",
        "target": 'What is compared: "value", "version", "create", "mod" or "lease".',
        "op": 'The relation: "==", "!=", "<" or ">".',
        "operand": "The value or number the key's field is compared with.",
    }

    def __init__(
        self, key: KeyLike, range_end: Optional[KeyLike], target: str, op: str, operand: Any
    ) -> None:
        self.key = key
        self.range_end = range_end
        self.target = target
        self.op = op
        self.operand = operand

    def _native(self) -> Tuple[Any, ...]:
        return (self.key, self.range_end, self.target, self.op, self.operand)

    def __repr__(self) -> str:
        return f"Compare({self.target}({self.key!r}) {self.op} {self.operand!r})"


class _Target:
    """The left side of a compare; compare it with ``==``, ``!=``, ``<`` or ``>``."""

    __slots__ = ("key", "range_end", "target")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, key: KeyLike, range_end: Optional[KeyLike], target: str) -> None:
        self.key = key
        self.range_end = range_end
        self.target = target

    def _compare(self, op: str, operand: Any) -> Compare:
        return Compare(self.key, self.range_end, self.target, op, operand)

    def __eq__(self, other: Any) -> Compare:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other: Any) -> Compare:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other: Any) -> Compare:
        return self._compare("<", other)

    def __gt__(self, other: Any) -> Compare:
        return self._compare(">", other)


class Op:
    """An operation of a transaction branch."""

    __slots__ = ("_tuple",)

    def __init__(self, native: Tuple[Any, ...]) -> None:
        self._tuple = native

    def _native(self) -> Tuple[Any, ...]:
        return self._tuple

    def __repr__(self) -> str:
        return f"Op{self._tuple!r}"


def _natives(
    items: Sequence[Any], kind: Union[Type[Compare], Type[Op]]
) -> List[Tuple[Any, ...]]:
    out: List[Tuple[Any, ...]] = []
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(
                f"expected {kind.__name__} objects built with store.transactions, "
                f"got {type(item).__name__}"
            )
        out.append(item._native())
    return out


def _nested(
    compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> Tuple[List[Tuple[Any, ...]], List[Tuple[Any, ...]], List[Tuple[Any, ...]]]:
    return (_natives(compare, Compare), _natives(success, Op), _natives(failure, Op))


class Transactions:
    """Builds compares and operations for :meth:`etch.Store.transaction`.

    Compares (``value``, ``version``, ``create``, ``mod``, ``lease``) take a key and an optional
    ``range_end`` (then every key of ``[key, range_end)`` must satisfy it); a missing key has
    version, create, mod and lease 0 and never satisfies a value compare.
    """

    def value(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> _Target:
        """Compare the value of ``key``."""
        return _Target(key, range_end, "value")

    def version(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> _Target:
        """Compare the version of ``key`` (0 if absent)."""
        return _Target(key, range_end, "version")

    def create(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> _Target:
        """Compare the create revision of ``key`` (0 if absent)."""
        return _Target(key, range_end, "create")

    def mod(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> _Target:
        """Compare the mod revision of ``key`` (0 if absent)."""
        return _Target(key, range_end, "mod")

    def lease(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> _Target:
        """Compare the lease id of ``key`` (0 if absent or no lease)."""
        return _Target(key, range_end, "lease")

    def put(self, key: KeyLike, value: KeyLike, lease: Any = None, prev_kv: bool = False) -> Op:
        """Put ``key = value``; the response is a :class:`etch.PutResponse`."""
        return Op(("put", key, value, _lease_id(lease), bool(prev_kv)))

    def get(self, key: KeyLike, range_end: Optional[KeyLike] = None) -> Op:
        """Read ``key`` (or ``[key, range_end)``); the response is a list of ``(value, meta)``."""
        return Op(("get", key, range_end))

    def delete(
        self, key: KeyLike, range_end: Optional[KeyLike] = None, prev_kv: bool = False
    ) -> Op:
        """Delete ``key`` (or ``[key, range_end)``); the response is a :class:`etch.DeleteResponse`."""
        return Op(("delete", key, range_end, bool(prev_kv)))

    def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> Op:
        """A nested transaction; its response is ``(succeeded, responses)``."""
        return Op(("txn",) + _nested(compare, success, failure))
