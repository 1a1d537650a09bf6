"""Show a stored value to an operator without running anything read from the database.

Workflow inputs and outputs, step outputs and errors are stored as text by the
application's serializer. Unpickling that text in an operator's process (the admin
server, a CLI, the Django admin) would hand code execution to anyone who can write the
database, so operator tools show instead:

- JSON text as it is (the ``JsonSerializer``'s values, and errors stored as JSON);
- for a pickle (base64), a summary read from its opcodes with ``pickletools`` (which
  parses and never executes): the value itself when it is a plain string, number,
  bool or None, else its type and size, and every class or function the pickle would
  import (a crafted pickle shows up as, say, ``references posix.system``);
- anything else as its size.

Passing ``serializer`` is the documented opt-in to decode with the application's own
serializer, for operators who trust the database as much as the code.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickletools
from dataclasses import dataclass
from typing import Any

from .serialization import Serializer

# Longest text shown before it is cut (the whole value is still in the database).
MAX_SHOWN_CHARACTERS = 2000
# Pickles larger than this are summarized by size only.
MAX_PARSED_PICKLE_BYTES = 1 << 20
_MAX_KEPT_STRING = 200
_MAX_LISTED_REFERENCES = 10


def _cut(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARACTERS:
        return text
    return f"{text[:MAX_SHOWN_CHARACTERS]}... ({len(text)} characters)"


def display_stored_value(text: str | None, serializer: Serializer | None = None) -> str | None:
    """The text an operator tool shows for one stored value (None stays None).

    Without ``serializer`` nothing is deserialized (see the module's docstring).
    """
    if text is None:
        return None
    if serializer is not None:
        try:
            return _cut(repr(serializer.deserialize(text)))
        except Exception as exc:
            return f"<cannot deserialize with {type(serializer).__name__}: {type(exc).__name__}>"
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return _cut(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if raw[:1] == b"\x80":  # the PROTO opcode that starts every pickle of protocol 2+
        return describe_pickle(raw)
    return f"<{len(text)} characters in an unknown format>"


@dataclass(frozen=True)
class _Item:
    """What the pickle machine would hold on its stack: a kind, and a value only where
    reading it from an opcode argument is exact (strings, numbers, names)."""

    kind: str
    value: Any = None
    known: bool = False
    items: tuple[_Item, ...] = ()


_MARK = _Item("mark")
_CONTAINER_MARK_OPS = {"APPENDS", "SETITEMS", "ADDITEMS"}
_BUILT_FROM_MARK = {"LIST": "list", "DICT": "dict", "FROZENSET": "frozenset"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_PRIMITIVE_KINDS = {"str", "int", "float", "bool", "None", "int_or_bool", "bytes_or_str"}


def _pop_to_mark(stack: list[_Item]) -> list[_Item]:
    items: list[_Item] = []
    while True:
        item = stack.pop()
        if item is _MARK:
            items.reverse()
            return items
        items.append(item)


def _pushed(kind: str, has_arg: bool, arg: Any) -> _Item:
    """The item an opcode pushes: an empty container, or a value from its argument."""
    if not has_arg:
        return _Item(kind)
    if isinstance(arg, (str, bytes, bytearray)) and (
        len(arg) > _MAX_KEPT_STRING or not isinstance(arg, str)
    ):
        return _Item(kind, len(arg))
    return _Item(kind, arg, known=isinstance(arg, (str, int, float, bool)))


def _index(arg: Any) -> int:
    if not isinstance(arg, int):
        raise ValueError(f"memo index {arg!r}")
    return arg


def _walk(data: bytes) -> tuple[_Item, list[str]]:
    """The top-level item of a pickle and the globals it references, without executing."""
    stack: list[_Item] = []
    memo: dict[int, _Item] = {}
    references: list[str] = []

    def reference(qualified: str) -> _Item:
        if qualified not in references:
            references.append(qualified)
        return _Item("global", qualified)

    def instance(factory: _Item, args: _Item | None) -> _Item:
        name = factory.value if factory.kind == "global" else "?"
        parts = args.items if args is not None and args.kind == "tuple" else ()
        return _Item("instance", name, items=parts)

    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            continue
        if name == "STOP":
            return stack.pop(), references
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[_index(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[_index(arg)])
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            _pop_to_mark(stack)
        elif name == "GLOBAL":
            stack.append(reference(str(arg).replace(" ", ".", 1)))
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            stack.append(reference(f"{module.value}.{attr.value}"))
        elif name == "INST":
            _pop_to_mark(stack)
            stack.append(instance(reference(str(arg).replace(" ", ".", 1)), None))
        elif name == "OBJ":
            parts = _pop_to_mark(stack)
            stack.append(instance(parts[0], _Item("tuple", items=tuple(parts[1:]))))
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            stack.append(instance(stack.pop(), args))
        elif name == "NEWOBJ_EX":
            stack.pop()  # keyword arguments
            args = stack.pop()
            stack.append(instance(stack.pop(), args))
        elif name == "BUILD":
            stack.pop()  # the state set on the object below it
        elif name in ("PERSID", "BINPERSID"):
            if name == "BINPERSID":
                stack.pop()
            stack.append(_Item("persistent reference"))
        elif name in ("EXT1", "EXT2", "EXT4"):
            stack.append(reference(f"extension code {arg}"))
        elif name == "APPEND":
            stack.pop()
        elif name == "SETITEM":
            del stack[-2:]
        elif name in _CONTAINER_MARK_OPS:
            _pop_to_mark(stack)
        elif name in _BUILT_FROM_MARK:
            _pop_to_mark(stack)
            stack.append(_Item(_BUILT_FROM_MARK[name]))
        elif name == "TUPLE":
            stack.append(_Item("tuple", items=tuple(_pop_to_mark(stack))))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            popped = tuple(stack[-count:])
            del stack[-count:]
            stack.append(_Item("tuple", items=popped))
        elif name in _CONSTANTS:
            value = _CONSTANTS[name]
            stack.append(_Item("None" if value is None else "bool", value, known=True))
        else:
            stack.append(_pushed(op.stack_after[0].name, op.arg is not None, arg))
    raise ValueError("pickle without STOP")


def _short_name(qualified: str) -> str:
    return qualified.removeprefix("builtins.")


def _render(item: _Item) -> str:
    if item.known:
        return repr(item.value)
    if item.kind == "instance":
        shown = [repr(p.value) for p in item.items if p.known]
        if item.items and len(shown) == len(item.items):
            return f"{_short_name(str(item.value))}({', '.join(shown)})"
        return f"{_short_name(str(item.value))} object"
    if item.kind == "global":
        return f"reference to {item.value}"
    if isinstance(item.value, int) and item.kind in ("bytes", "bytearray", "bytes_or_str"):
        return f"{item.kind} of {item.value} bytes"
    if isinstance(item.value, int) and item.kind == "str":
        return f"str of {item.value} characters"
    return item.kind


def describe_pickle(data: bytes) -> str:
    """A one-line description of a pickle read from its opcodes (nothing is executed)."""
    size = f"pickle, {len(data)} bytes"
    if len(data) > MAX_PARSED_PICKLE_BYTES:
        return f"<{size}>"
    try:
        top, references = _walk(data)
    except Exception:
        return f"<{size}, unreadable>"
    if top.known and top.kind in _PRIMITIVE_KINDS and not references:
        return _cut(repr(top.value))
    text = f"<{size}: {_cut(_render(top))}"
    if references:
        listed = references[:_MAX_LISTED_REFERENCES]
        more = len(references) - len(listed)
        text += "; references " + ", ".join(listed) + (f" and {more} more" if more else "")
    return text + ">"
