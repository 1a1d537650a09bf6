"""Durable workflows and steps, checkpointed in SQLite or PostgreSQL.

``from dbos_core import DBOS, Queue, SetWorkflowID, ...`` mirrors the seeds'
``from dbos import ...``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import error
from .classes import DBOSConfiguredInstance
from .client import ClientWorkflowHandle, ClientWorkflowHandleAsync, DBOSClient, EnqueueOptions
from .config import DBOSConfig
from .dbos import DBOS
from .debouncer import Debouncer
from .handles import WorkflowHandle, WorkflowHandleAsync
from .kafka import KafkaMessage, kafka_workflow_id
from .options import SetAuthenticatedUser, SetEnqueueOptions, SetWorkflowID, SetWorkflowTimeout
from .queue import Queue
from .serialization import JsonSerializer, PickleSerializer, Serializer
from .types import StepInfo, WorkflowInputs, WorkflowStatus, WorkflowStatusString

__all__ = [
    "DBOS",
    "ClientWorkflowHandle",
    "ClientWorkflowHandleAsync",
    "DBOSClient",
    "DBOSConfig",
    "DBOSConfiguredInstance",
    "Debouncer",
    "EnqueueOptions",
    "JsonSerializer",
    "KafkaMessage",
    "PickleSerializer",
    "Queue",
    "Serializer",
    "SetAuthenticatedUser",
    "SetEnqueueOptions",
    "SetWorkflowID",
    "SetWorkflowTimeout",
    "StepInfo",
    "WorkflowHandle",
    "WorkflowHandleAsync",
    "WorkflowInputs",
    "WorkflowStatus",
    "WorkflowStatusString",
    "error",
    "kafka_workflow_id",
]
