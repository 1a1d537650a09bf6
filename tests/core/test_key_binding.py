"""A reused workflow ID answers only the caller it belongs to (the rule in the README).

Bound callers (a request scope, SetAuthenticatedUser, a workflow started by either) get
the idempotent answer only when the recorded user is theirs; plain code keeps the
seeds' behaviour. The adapters' tests drive the same rule through real frameworks.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dbos_core import DBOS, DBOSClient, SetWorkflowID
from dbos_core import integration as seam
from dbos_core.error import DBOSConflictingWorkflowError, DBOSWorkflowIDConflictError
from dbos_core.options import SetAuthenticatedUser

runs: list[str] = []
runs_lock = threading.Lock()
release = threading.Event()


@DBOS.step()
def kb_record_run(tag: str) -> None:
    with runs_lock:
        runs.append(tag)


@DBOS.workflow()
def kb_private_order(tag: str) -> dict[str, Any]:
    kb_record_run(tag)
    return {"secret": f"card of {DBOS.authenticated_user}", "tag": tag}


@DBOS.workflow()
def kb_other_function(tag: str) -> str:
    return tag


@DBOS.workflow()
def kb_slow_order(tag: str) -> str:
    release.wait(30)
    kb_record_run(tag)
    return f"{tag} by {DBOS.authenticated_user}"


@DBOS.workflow()
def kb_parent_choosing_child_id(child_id: str) -> Any:
    with SetWorkflowID(child_id):
        return kb_private_order("child")


@pytest.fixture(autouse=True)
def _clean() -> Any:
    runs.clear()
    release.clear()
    yield
    release.set()


def as_user(user: str | None) -> Any:
    return seam.request_scope(idempotency_key="shared-1", identity=lambda: user)


def assert_reveals_nothing(exc: BaseException) -> None:
    text = str(exc) + repr(vars(exc))
    for secret in ("alice", "kb_private_order", "SUCCESS", "card of"):
        assert secret not in text


def test_another_user_or_anonymous_gets_a_conflict_that_reveals_nothing(
    dbos: type[DBOS],
) -> None:
    with as_user("alice"):
        first = kb_private_order("a")
    assert first == {"secret": "card of alice", "tag": "a"}
    with as_user("alice"):
        assert kb_private_order("a") == first  # the same user: the idempotent answer
    for intruder in ("bob", None):
        with pytest.raises(DBOSWorkflowIDConflictError) as caught, as_user(intruder):
            kb_private_order("a")
        assert caught.value.http_status == 409 and caught.value.code == "WORKFLOW_ID_CONFLICT"
        assert caught.value.workflow_id == "shared-1"
        assert_reveals_nothing(caught.value)
    assert runs == ["a"]


def test_anonymous_first_then_a_user(dbos: type[DBOS]) -> None:
    with as_user(None):
        assert kb_private_order("anon")["secret"] == "card of None"
    with as_user(None):
        assert kb_private_order("anon")["tag"] == "anon"  # anonymous matches anonymous
    with pytest.raises(DBOSWorkflowIDConflictError), as_user("alice"):
        kb_private_order("anon")
    # start_workflow and enqueue follow the same rule.
    with pytest.raises(DBOSWorkflowIDConflictError), as_user("alice"):
        DBOS.start_workflow(kb_private_order, "anon")
    assert runs == ["anon"]


def test_set_authenticated_user_binds_plain_code(dbos: type[DBOS]) -> None:
    with SetAuthenticatedUser("alice"), SetWorkflowID("order-7"):
        kb_private_order("7")
    with (
        SetAuthenticatedUser("bob"),
        SetWorkflowID("order-7"),
        pytest.raises(DBOSWorkflowIDConflictError),
    ):
        kb_private_order("7")
    assert runs == ["7"]


def test_plain_code_keeps_the_seeds_idempotency(dbos: type[DBOS]) -> None:
    with as_user("alice"):
        first = kb_private_order("p")
    # A script, a job or a test that chose the ID gets the result, whoever started it.
    with SetWorkflowID("shared-1"):
        assert kb_private_order("p") == first
    assert DBOS.retrieve_workflow("shared-1").get_result() == first
    assert runs == ["p"]


def test_a_child_inherits_its_parents_user(dbos: type[DBOS]) -> None:
    with as_user("alice"):
        kb_private_order("a")  # "shared-1" is alice's
    # A parent started by bob, or by an anonymous request, may not adopt alice's
    # workflow as its child (the parents get IDs of their own: no key here)...
    for intruder in ("bob", None):
        with seam.request_scope(identity=lambda user=intruder: user):
            parent = DBOS.start_workflow(kb_parent_choosing_child_id, "shared-1")
        assert parent.get_workflow_id() != "shared-1"
        with pytest.raises(DBOSWorkflowIDConflictError):
            parent.get_result()
    # ...a parent started by alice may, and replaying it finds its own child again.
    with seam.request_scope(identity=lambda: "alice"):
        handle = DBOS.start_workflow(kb_parent_choosing_child_id, "shared-1")
    assert handle.get_result()["secret"] == "card of alice"
    # A parent started by plain code (no user, no request) keeps the seeds' behaviour.
    assert kb_parent_choosing_child_id("shared-1")["tag"] == "a"
    assert runs == ["a"]


def test_function_names_are_named_only_to_plain_code(dbos: type[DBOS]) -> None:
    with as_user("alice"):
        kb_private_order("a")
    with pytest.raises(DBOSConflictingWorkflowError) as caught, as_user("alice"):
        kb_other_function("x")
    assert "kb_private_order" not in caught.value.message
    with (
        pytest.raises(DBOSConflictingWorkflowError, match="kb_private_order"),
        SetWorkflowID("shared-1"),
    ):
        kb_other_function("x")


def test_concurrent_starts_by_two_users(dbos: type[DBOS]) -> None:
    outcomes: dict[str, Any] = {}
    barrier = threading.Barrier(4)

    def start(user: str, n: int) -> None:
        barrier.wait(10)
        try:
            with seam.request_scope(idempotency_key="race-1", identity=lambda: user):
                handle = DBOS.start_workflow(kb_slow_order, user)
            outcomes[f"{user}-{n}"] = handle
        except DBOSWorkflowIDConflictError as exc:
            outcomes[f"{user}-{n}"] = exc

    threads = [
        threading.Thread(target=start, args=(u, n)) for u in ("alice", "bob") for n in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    release.set()
    owner = DBOS.retrieve_workflow("race-1").get_status().authenticated_user
    loser = "bob" if owner == "alice" else "alice"
    for n in (1, 2):
        assert outcomes[f"{owner}-{n}"].get_result() == f"{owner} by {owner}"
        assert isinstance(outcomes[f"{loser}-{n}"], DBOSWorkflowIDConflictError)
    assert runs == [owner]


def test_client_binds_when_it_names_a_user(dbos: type[DBOS], db_url: str) -> None:
    with as_user("alice"):
        kb_private_order("a")
    name = DBOS.retrieve_workflow("shared-1").get_status().name
    with DBOSClient(db_url) as client:
        options: Any = {"queue_name": "q", "workflow_name": name, "workflow_id": "shared-1"}
        with pytest.raises(DBOSWorkflowIDConflictError):
            client.enqueue({**options, "authenticated_user": "bob"})
        assert client.enqueue({**options, "authenticated_user": "alice"}).get_result()["tag"] == "a"
        # The client without a user is trusted code: the seeds' idempotency.
        assert client.enqueue(options).get_result()["tag"] == "a"
