"""How values are turned into text for the system database.

The seeds' default is pickle, base64-encoded; a JSON serializer ships too. Errors
are stored through the same serializer when it can carry them, otherwise as a
portable ``{type, message}`` record so that any reader can still show them.
"""

from __future__ import annotations

import base64
import builtins
import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from .error import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSAwaitedWorkflowMaxRecoveryError,
    DBOSSerializationError,
    DBOSWorkflowRuntimeError,
)

_ERROR_MARKER = "__dbos_error__"


class Serializer(ABC):
    """Turns values into strings and back; supply one in ``DBOSConfig['serializer']``."""

    @abstractmethod
    def serialize(self, data: Any) -> str: ...

    @abstractmethod
    def deserialize(self, serialized_data: str) -> Any: ...


class PickleSerializer(Serializer):
    """The default: ``pickle`` then base64, so any picklable value round-trips."""

    def serialize(self, data: Any) -> str:
        return base64.b64encode(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)).decode(
            "ascii"
        )

    def deserialize(self, serialized_data: str) -> Any:
        return pickle.loads(base64.b64decode(serialized_data))


class JsonSerializer(Serializer):
    """Portable JSON; values must be JSON types (tuples come back as lists).

    Value types of the library that workflows receive (``KafkaMessage``) are stored
    as tagged objects and come back as themselves: see ``register_json_type``.
    """

    def serialize(self, data: Any) -> str:
        return json.dumps(data, separators=(",", ":"), default=_json_default)

    def deserialize(self, serialized_data: str) -> Any:
        hook = _json_object_hook if _json_decoders else None
        return json.loads(serialized_data, object_hook=hook)


# Value types the JSON serializer writes as {"__dbos_type__": tag, "data": ...}.
_JSON_TYPE_TAG = "__dbos_type__"
_json_encoders: dict[type, tuple[str, Callable[[Any], Any]]] = {}
_json_decoders: dict[str, Callable[[Any], Any]] = {}


def register_json_type(
    cls: type, tag: str, encode: Callable[[Any], Any], decode: Callable[[Any], Any]
) -> None:
    """Let ``JsonSerializer`` store ``cls`` (``encode`` to JSON types, ``decode`` back)."""
    _json_encoders[cls] = (tag, encode)
    _json_decoders[tag] = decode


def _json_default(value: Any) -> Any:
    entry = _json_encoders.get(type(value))
    if entry is None:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    tag, encode = entry
    return {_JSON_TYPE_TAG: tag, "data": encode(value)}


def _json_object_hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_JSON_TYPE_TAG)
    if tag is not None and len(obj) == 2 and "data" in obj:
        decode = _json_decoders.get(tag)
        if decode is not None:
            return decode(obj["data"])
    return obj


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def serialize_value(serializer: Serializer, value: Any, what: str) -> str:
    """Serialize or raise a ``DBOSSerializationError`` naming what could not be stored."""
    try:
        return serializer.serialize(value)
    except Exception as exc:
        raise DBOSSerializationError(
            f"Cannot serialize {what} {describe(value)} with {type(serializer).__name__}: {exc}"
        ) from exc


def deserialize_value(serializer: Serializer, text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return serializer.deserialize(text)
    except Exception as exc:
        raise DBOSSerializationError(
            f"Cannot deserialize stored {what} with {type(serializer).__name__}: {exc}"
        ) from exc


def serialize_error(serializer: Serializer, error: BaseException) -> str:
    """Store the exception itself when possible, else a portable description of it."""
    try:
        text = serializer.serialize(error)
        # A serializer that "succeeds" but cannot give an exception back is no use here.
        if isinstance(serializer.deserialize(text), BaseException):
            return text
    except Exception:
        pass
    record = {
        _ERROR_MARKER: True,
        "type": type(error).__name__,
        "module": type(error).__module__,
        "message": str(error),
    }
    try:
        return serializer.serialize(record)
    except Exception:
        return json.dumps(record)


def deserialize_error(serializer: Serializer, text: str | None) -> BaseException | None:
    if text is None:
        return None
    try:
        value = serializer.deserialize(text)
    except Exception:
        try:
            value = json.loads(text)
        except ValueError:
            return DBOSWorkflowRuntimeError("UnreadableError", text[:200])
    if isinstance(value, BaseException):
        return value
    if isinstance(value, dict) and value.get(_ERROR_MARKER):
        type_name = str(value.get("type", "Exception"))
        message = str(value.get("message", ""))
        builtin = getattr(builtins, type_name, None)
        if (
            value.get("module") == "builtins"
            and isinstance(builtin, type)
            and issubclass(builtin, Exception)
        ):
            try:
                return builtin(message)
            except Exception:
                pass
        return DBOSWorkflowRuntimeError(type_name, message)
    return DBOSWorkflowRuntimeError("Exception", str(value))


def decode_workflow_outcome(
    serializer: Serializer, workflow_id: str, status: str, output: str | None, error: str | None
) -> Any:
    """Return a finished workflow's result, or raise what its caller should see."""
    if status == "SUCCESS":
        return deserialize_value(serializer, output, f"result of workflow {workflow_id!r}")
    if status == "ERROR":
        exc = deserialize_error(serializer, error)
        assert exc is not None
        raise exc
    if status == "CANCELLED":
        raise DBOSAwaitedWorkflowCancelledError(workflow_id)
    raise DBOSAwaitedWorkflowMaxRecoveryError(workflow_id, 0)
