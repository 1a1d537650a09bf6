"""Every system table, declared once with SQLAlchemy Core.

Tables live in the schema named ``dbos`` here; a translate map puts them in the
configured schema on PostgreSQL and in the main database on SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_PLACEHOLDER = "dbos"
metadata = MetaData(schema=SCHEMA_PLACEHOLDER)

# An auto-incrementing key: BIGINT identity on PostgreSQL, the rowid alias on SQLite.
_Seq = BigInteger().with_variant(Integer(), "sqlite")

workflow_status = Table(
    "workflow_status",
    metadata,
    Column("workflow_uuid", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("class_name", Text),
    Column("config_name", Text),
    Column("authenticated_user", Text),
    Column("assumed_role", Text),
    Column("authenticated_roles", Text),
    Column("request_id", Text),
    Column("inputs", Text),
    Column("output", Text),
    Column("error", Text),
    Column("executor_id", Text),
    # The process (runtime instance) executing it now; recovery leaves the workflows
    # of a live owner alone even when several processes share one executor ID.
    Column("owner_instance", Text),
    Column("application_version", Text),
    Column("application_id", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("recovery_attempts", BigInteger, nullable=False, server_default="0"),
    Column("queue_name", Text),
    Column("queue_partition_key", Text),
    Column("deduplication_id", Text),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("workflow_timeout_ms", BigInteger),
    Column("workflow_deadline_epoch_ms", BigInteger),
    # When a queue handed the workflow to an executor (ms); NULL while ENQUEUED.
    Column("started_at_epoch_ms", BigInteger),
    Column("parent_workflow_id", Text),
    Column("forked_from", Text),
    # Guards against recovering a workflow more times than allowed.
    Column("max_recovery_attempts", Integer),
    # W3C traceparent of the trace the workflow belongs to (migration v3), so that an
    # execution recovered in another process continues the same trace.
    Column("trace_context", Text),
    UniqueConstraint("queue_name", "deduplication_id", name="uq_workflow_status_queue_dedup"),
)
Index("ix_workflow_status_created_at", workflow_status.c.created_at)
Index("ix_workflow_status_executor_status", workflow_status.c.executor_id, workflow_status.c.status)
Index(
    "ix_workflow_status_queue",
    workflow_status.c.queue_name,
    workflow_status.c.status,
    workflow_status.c.priority,
    workflow_status.c.created_at,
)
Index("ix_workflow_status_parent", workflow_status.c.parent_workflow_id)

# What the dashboard's list, queue and health pages read (storage/dashboard.py), so that
# each page stays one short index range on a table of millions (migration v4).
DASHBOARD_INDEXES = (
    Index(
        "ix_workflow_status_status_created", workflow_status.c.status, workflow_status.c.created_at
    ),
    Index("ix_workflow_status_name_created", workflow_status.c.name, workflow_status.c.created_at),
    Index(
        "ix_workflow_status_user_created",
        workflow_status.c.authenticated_user,
        workflow_status.c.created_at,
        postgresql_where=workflow_status.c.authenticated_user.is_not(None),
        sqlite_where=workflow_status.c.authenticated_user.is_not(None),
    ),
    Index(
        "ix_workflow_status_queue_created",
        workflow_status.c.queue_name,
        workflow_status.c.created_at,
        postgresql_where=workflow_status.c.queue_name.is_not(None),
        sqlite_where=workflow_status.c.queue_name.is_not(None),
    ),
    # Dispatches of the last hour (queue throughput and latency).
    Index(
        "ix_workflow_status_dispatched",
        workflow_status.c.started_at_epoch_ms,
        postgresql_where=workflow_status.c.queue_name.is_not(None),
        sqlite_where=workflow_status.c.queue_name.is_not(None),
    ),
    # Workflows that ran more than once (recoveries): few rows.
    Index(
        "ix_workflow_status_recovered",
        workflow_status.c.updated_at,
        postgresql_where=workflow_status.c.recovery_attempts > 1,
        sqlite_where=workflow_status.c.recovery_attempts > 1,
    ),
    # A workflow's forks (its page links them): few rows.
    Index(
        "ix_workflow_status_forked_from",
        workflow_status.c.forked_from,
        postgresql_where=workflow_status.c.forked_from.is_not(None),
        sqlite_where=workflow_status.c.forked_from.is_not(None),
    ),
    # ID-prefix search: PostgreSQL's default collation does not order text by bytes, so
    # LIKE 'prefix%' needs pattern ops; SQLite searches a prefix on the primary key.
    Index(
        "ix_workflow_status_id_pattern",
        workflow_status.c.workflow_uuid,
        postgresql_ops={"workflow_uuid": "text_pattern_ops"},
    ).ddl_if(dialect="postgresql"),
)

operation_outputs = Table(
    "operation_outputs",
    metadata,
    Column(
        "workflow_uuid",
        Text,
        ForeignKey(f"{SCHEMA_PLACEHOLDER}.workflow_status.workflow_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("function_id", Integer, nullable=False),
    Column("function_name", Text, nullable=False),
    Column("output", Text),
    Column("error", Text),
    Column("child_workflow_id", Text),
    Column("started_at_epoch_ms", BigInteger),
    Column("completed_at_epoch_ms", BigInteger),
    PrimaryKeyConstraint("workflow_uuid", "function_id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    # Unique so that an idempotent send (same sender workflow and step) lands once.
    Column("message_uuid", Text, nullable=False, unique=True),
    Column(
        "destination_uuid",
        Text,
        ForeignKey(f"{SCHEMA_PLACEHOLDER}.workflow_status.workflow_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("topic", Text, nullable=False, server_default=""),
    Column("message", Text, nullable=False),
    Column("created_at_epoch_ms", BigInteger, nullable=False),
    # Set by the recv that took the message. Consumed rows stay, so that an
    # idempotent send retried after the message was read still lands only once.
    Column("consumed_at_epoch_ms", BigInteger),
)
Index("ix_notifications_destination_topic", notifications.c.destination_uuid, notifications.c.topic)

workflow_events = Table(
    "workflow_events",
    metadata,
    Column(
        "workflow_uuid",
        Text,
        ForeignKey(f"{SCHEMA_PLACEHOLDER}.workflow_status.workflow_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("workflow_uuid", "key"),
)

streams = Table(
    "streams",
    metadata,
    Column(
        "workflow_uuid",
        Text,
        ForeignKey(f"{SCHEMA_PLACEHOLDER}.workflow_status.workflow_uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", Text, nullable=False),
    Column("offset", Integer, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("workflow_uuid", "key", "offset"),
)

# A debounced workflow waits here until its fire time; its workflow row is ENQUEUED
# on a hold queue that no dispatcher serves, then moved to its real queue.
debouncers = Table(
    "debouncers",
    metadata,
    Column("debounce_key", Text, primary_key=True),
    Column("workflow_uuid", Text, nullable=False),
    Column("fire_at_epoch_ms", BigInteger, nullable=False),
    # First debounce + debounce_timeout_sec: the delay never runs past this.
    Column("give_up_at_epoch_ms", BigInteger),
    Column("target_queue", Text, nullable=False),
)
Index("ix_debouncers_fire_at", debouncers.c.fire_at_epoch_ms)

migrations_table = Table(
    "dbos_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", BigInteger, nullable=False),
)
