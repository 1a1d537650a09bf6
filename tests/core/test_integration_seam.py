"""The seam's own decisions, which every adapter inherits (their tests drive them too)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from dbos_core import DBOS, DBOSConfig
from dbos_core import integration as seam
from dbos_core.error import (
    DBOSConfigurationError,
    DBOSDatabaseUnavailableError,
    DBOSInitializationError,
    DBOSInvalidIDError,
    DBOSNonExistentWorkflowError,
)


def test_error_response_keeps_5xx_details_in_the_log() -> None:
    leaky = DBOSDatabaseUnavailableError(
        "Cannot connect to the system database 'postgresql://bob@db.internal/payroll'"
    )
    status, body = seam.error_response(leaky)
    assert status == 503 and body["error"] == "DATABASE_UNAVAILABLE"
    assert "db.internal" not in body["message"] and "payroll" not in body["message"]
    status, body = seam.error_response(DBOSInitializationError("launched before fork"))
    assert status == 500 and "fork" not in body["message"]
    status, body = seam.error_response(DBOSNonExistentWorkflowError("w-1"))
    assert status == 404 and body == {
        "error": "NONEXISTENT_WORKFLOW",
        "message": "Workflow 'w-1' does not exist",
        "workflow_id": "w-1",
    }


@pytest.mark.parametrize(
    ("returned", "identity"),
    [
        (None, seam.ANONYMOUS),
        ("", seam.ANONYMOUS),
        ("ann", seam.Identity("ann")),
        (("ann",), seam.Identity("ann")),
        (("ann", ["a", "b"]), seam.Identity("ann", ["a", "b"])),
        (("ann", ("a",), "a"), seam.Identity("ann", ["a"], "a")),
        ((None, ["a"]), seam.ANONYMOUS),
        ((7, None), seam.Identity("7")),
    ],
)
def test_one_identity_shape(returned: Any, identity: seam.Identity) -> None:
    assert seam.normalize_identity(returned) == identity


def test_identity_shapes_refused() -> None:
    class Role:
        name = "editor"

    assert seam.normalize_identity(("ann", [Role(), "x"])).roles == ["editor", "x"]
    with pytest.raises(TypeError, match="roles of user 'ann'"):
        seam.normalize_identity(("ann", "admin"))
    with pytest.raises(TypeError, match="user resolver must return"):
        seam.normalize_identity({"user": "ann"})


def test_header_values_are_utf8_as_sent() -> None:
    assert seam.read_idempotency_key("café".encode()) == "café"
    assert seam.read_idempotency_key("café".encode().decode("latin-1")) == "café"  # WSGI
    assert seam.read_idempotency_key("  k-1 ") == "k-1"
    assert seam.read_idempotency_key(None) is None
    for bad in (b"\xff", b"", b"  ", b"a\x00", "x" * 300):
        with pytest.raises(DBOSInvalidIDError, match="idempotency key"):
            seam.read_idempotency_key(bad)
    assert len(seam.read_request_id(None)) == 32
    assert seam.read_request_id(b"req-7") == "req-7"
    with pytest.raises(DBOSInvalidIDError, match="request id"):
        seam.read_request_id(b"r\x01x")


def test_boolean_settings() -> None:
    for text, value in (("False", False), ("0", False), ("off", False), ("TRUE", True)):
        assert seam.setting_bool(text, "X") is value
    assert seam.setting_bool(0, "X") is False and seam.setting_bool(True, "X") is True
    with pytest.raises(DBOSConfigurationError, match="X must be true or false"):
        seam.setting_bool("maybe", "X")


@pytest.fixture()
def no_dbos() -> Iterator[None]:
    DBOS.destroy()
    yield
    seam.destroy_launched()


def test_launch_guard_once_per_process(no_dbos: None, dbos_config: DBOSConfig) -> None:
    configured: list[int] = []

    def configure() -> None:
        configured.append(1)
        DBOS(config=dbos_config)

    assert seam.ensure_launched(configure) is True
    assert seam.ensure_launched(configure) is False and configured == [1]
    assert seam.launched_by_adapter() and seam.launched_in_pid() == os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: in-memory checks only, then leave at once
        code = 1
        try:
            seam.ensure_launched(configure)
        except DBOSInitializationError as exc:
            code = 0 if "before it forked" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    seam.destroy_launched()
    assert not seam.is_launched() and not seam.launched_by_adapter()


def test_launch_guard_adopts_and_refuses_a_second_configuration(
    no_dbos: None, dbos_config: DBOSConfig, tmp_path: Any
) -> None:
    DBOS(config=dbos_config)
    DBOS.launch()  # the application launched it itself
    first, second = object(), object()
    assert seam.ensure_launched(owner=first, config=dbos_config) is False
    assert not seam.launched_by_adapter()  # adopted, not launched: not ours to destroy
    assert seam.ensure_launched(owner=second, config=dbos_config) is False  # same config
    other = {**dbos_config, "name": "other"}
    with pytest.raises(DBOSInitializationError, match="different configuration"):
        seam.ensure_launched(owner=second, config=other)
