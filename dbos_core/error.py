"""One exception tree for the whole library.

Every error carries a stable ``code`` so that adapters (HTTP error responses,
the CLI, the admin server) can map it without matching on messages.
"""

from __future__ import annotations

from typing import Any


class DBOSException(Exception):
    """Base class of every error raised by the library."""

    code: str = "DBOS_ERROR"
    # HTTP status that adapters use when this error escapes a request handler.
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (they are checkpointed) whatever their __init__ takes.
        return (_rebuild_error, (type(self), self.message, self.__dict__.copy()))


def _rebuild_error(cls: type[DBOSException], message: str, state: dict[str, Any]) -> DBOSException:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class DBOSConfigurationError(DBOSException):
    """A configuration value, URL or option is malformed or unsupported."""

    code = "CONFIGURATION_ERROR"


class DBOSInitializationError(DBOSException):
    """DBOS could not start: database unreachable, not launched, launched twice."""

    code = "INITIALIZATION_ERROR"


class DBOSDatabaseUnavailableError(DBOSInitializationError):
    """The system database could not be reached within the allowed time."""

    code = "DATABASE_UNAVAILABLE"
    http_status = 503


class DBOSNotLaunchedError(DBOSInitializationError):
    """An operation needs a launched DBOS instance."""

    code = "NOT_LAUNCHED"


class DBOSConflictingRegistrationError(DBOSException):
    """Two DBOS decorators on one function, or two functions under one name."""

    code = "CONFLICTING_REGISTRATION"


class DBOSConflictingWorkflowError(DBOSException):
    """A workflow ID is already used by a workflow with a different function."""

    code = "CONFLICTING_WORKFLOW"
    http_status = 409

    def __init__(self, workflow_id: str, message: str) -> None:
        super().__init__(f"Conflicting workflow ID {workflow_id}: {message}")
        self.workflow_id = workflow_id


class DBOSInvalidIDError(DBOSException):
    """A workflow ID, idempotency key, deduplication ID, partition key or debounce key is
    malformed: empty, longer than ``MAX_ID_LENGTH`` characters, or containing control
    characters. Raised before anything is written (``dbos_core.identifiers``)."""

    code = "INVALID_ID"
    http_status = 400

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"Invalid {what}: {reason}")
        self.what = what
        self.reason = reason


class DBOSWorkflowIDConflictError(DBOSException):
    """A start reused a workflow ID (idempotency key) that another caller owns.

    The workflow exists and was started by a different authenticated user (or by an
    authenticated user when the caller is anonymous, or the other way round). The error
    says nothing about that workflow: not its user, function, status or result.
    """

    code = "WORKFLOW_ID_CONFLICT"
    http_status = 409

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"Workflow ID {workflow_id!r} is already used by another caller; choose a different key"
        )
        self.workflow_id = workflow_id


class DBOSNonExistentWorkflowError(DBOSException):
    """No workflow exists with the given ID."""

    code = "NONEXISTENT_WORKFLOW"
    http_status = 404

    def __init__(self, workflow_id: str, what: str = "") -> None:
        detail = f" ({what})" if what else ""
        super().__init__(f"Workflow {workflow_id!r} does not exist{detail}")
        self.workflow_id = workflow_id


class DBOSWorkflowFunctionNotFoundError(DBOSException):
    """A stored workflow names a function this process has not registered."""

    code = "WORKFLOW_FUNCTION_NOT_FOUND"

    def __init__(self, workflow_id: str, name: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} runs function {name!r}, which is not registered "
            "in this process (import the module that defines it before DBOS.launch())"
        )
        self.workflow_id = workflow_id


class DBOSUnexpectedStepError(DBOSException):
    """Replay reached a different step than the one recorded: the workflow is not deterministic."""

    code = "UNEXPECTED_STEP"

    def __init__(self, workflow_id: str, function_id: int, expected: str, recorded: str) -> None:
        super().__init__(
            f"During execution of workflow {workflow_id!r} step {function_id}, function "
            f"{expected!r} was called, but the recorded step was {recorded!r}. "
            "Workflows must be deterministic."
        )
        self.workflow_id = workflow_id
        self.function_id = function_id


class DBOSMaxStepRetriesExceeded(DBOSException):
    """A step failed on every one of its allowed attempts."""

    code = "MAX_STEP_RETRIES_EXCEEDED"

    def __init__(self, step_name: str, max_attempts: int, errors: list[BaseException]) -> None:
        last = f": {errors[-1]!r}" if errors else ""
        super().__init__(f"Step {step_name!r} failed after {max_attempts} attempts{last}")
        self.step_name = step_name
        self.max_attempts = max_attempts
        self.errors = errors


class DBOSWorkflowCancelledError(DBOSException):
    """The workflow was cancelled (directly or by its timeout)."""

    code = "WORKFLOW_CANCELLED"
    http_status = 409

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"Workflow {workflow_id!r} was cancelled")
        self.workflow_id = workflow_id


class DBOSAwaitedWorkflowCancelledError(DBOSWorkflowCancelledError):
    """``get_result`` was called on a workflow that ended CANCELLED."""

    code = "AWAITED_WORKFLOW_CANCELLED"


class DBOSMaxRecoveryAttemptsExceededError(DBOSException):
    """A workflow was started more times than its ``max_recovery_attempts``."""

    code = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    def __init__(self, workflow_id: str, max_attempts: int) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} exceeded its maximum of {max_attempts} recovery "
            "attempts; it is now MAX_RECOVERY_ATTEMPTS_EXCEEDED and can be restarted "
            "with DBOS.resume_workflow"
        )
        self.workflow_id = workflow_id


class DBOSAwaitedWorkflowMaxRecoveryError(DBOSMaxRecoveryAttemptsExceededError):
    """``get_result`` was called on a workflow that exceeded its recovery attempts."""

    code = "AWAITED_WORKFLOW_MAX_RECOVERY"


class DBOSSerializationError(DBOSException):
    """A value could not be serialized or deserialized."""

    code = "SERIALIZATION_ERROR"
    http_status = 400


class DBOSInvalidStepCallError(DBOSException):
    """An operation was called where it is not allowed (for example a workflow started in a step)."""

    code = "INVALID_CALL"
    http_status = 500


class DBOSWorkflowRuntimeError(DBOSException):
    """A stored error could not be rebuilt as its original exception type."""

    code = "WORKFLOW_ERROR"

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


class DBOSQueueDeduplicatedError(DBOSException):
    """A workflow with the same deduplication ID is already enqueued or running on the queue."""

    code = "QUEUE_DEDUPLICATED"
    http_status = 409

    def __init__(self, workflow_id: str, queue_name: str, deduplication_id: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} was deduplicated: a workflow with deduplication ID "
            f"{deduplication_id!r} is already enqueued or running on queue {queue_name!r}"
        )
        self.workflow_id = workflow_id
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id


class DBOSQueueError(DBOSException):
    """A queue was misconfigured or misused."""

    code = "QUEUE_ERROR"
    http_status = 400


class DBOSUnknownStepError(DBOSException):
    """A fork or inspection named a step that the workflow does not have."""

    code = "UNKNOWN_STEP"
    http_status = 400


class DBOSAdminAuthError(DBOSException):
    """The admin server refused a request without the right bearer token."""

    code = "UNAUTHORIZED"
    http_status = 401


class DBOSNotAuthorizedError(DBOSException):
    """Kept for compatibility with callers that check authorization failures."""

    code = "NOT_AUTHORIZED"
    http_status = 403


class DBOSMetricsDisabledError(DBOSException):
    """Metrics were asked for (a metrics view of an adapter), but ``enable_metrics`` is off."""

    code = "METRICS_DISABLED"
    http_status = 404
