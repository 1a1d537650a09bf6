"""``dbos-suite``: the operator's command line for a DBOS system database.

    dbos-suite migrate                      create or upgrade the system tables
    dbos-suite reset --yes                  drop and recreate them (deletes all workflows)
    dbos-suite workflow list [filters]      list workflows (table, or --json)
    dbos-suite workflow get ID
    dbos-suite workflow steps ID
    dbos-suite workflow cancel ID
    dbos-suite workflow resume ID           back onto the internal queue, to run again
    dbos-suite workflow fork ID --step N    a new workflow from step N (earlier steps copied)
    dbos-suite queue list [--workflows]     per-queue counts, or the queued workflows

The database is ``--db-url`` or ``DBOS_SYSTEM_DATABASE_URL``. It works from storage
alone (through ``DBOSClient``), so it never needs the application to be running.
Inputs and outputs are shown without being deserialized (``dbos_core.safe_display``):
nothing read from the database runs in the operator's process. ``--deserialize`` is
the explicit opt-in to decode them with the application's serializer
(``--serializer module:attr``, pickle by default).
Exit status: 0 on success, 1 on an error the command reports, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .error import DBOSException
from .serialization import Serializer

_STATUS_COLUMNS = ("workflow_id", "status", "name", "created_at", "queue_name", "app_version")


class UsageError(Exception):
    pass


def _format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= 60 else text[:57] + "..."

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def _format_record(record: dict[str, Any]) -> str:
    width = max(len(k) for k in record)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in record.items())


def _parser(prog: str = "dbos-suite") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-D",
        "--db-url",
        help="system database URL (default: $DBOS_SYSTEM_DATABASE_URL)",
    )
    common.add_argument("--schema", default="dbos", help="PostgreSQL schema of the system tables")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument(
        "--serializer",
        metavar="MODULE:ATTR",
        help="the application's Serializer (an instance or a class), as in "
        "DBOSConfig['serializer'] (default: pickle)",
    )
    common.add_argument(
        "--deserialize",
        action="store_true",
        help="show inputs and outputs decoded by the serializer; with pickle this runs "
        "code read from the database: only for a database you trust like your code",
    )

    parser = argparse.ArgumentParser(
        prog=prog, description="Manage the workflows in a DBOS system database."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", parents=[common], help="create or upgrade the system tables")
    reset = commands.add_parser(
        "reset", parents=[common], help="drop and recreate the system tables (deletes everything)"
    )
    reset.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    workflow = commands.add_parser("workflow", help="inspect and manage workflows")
    wf_commands = workflow.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = wf_commands.add_parser("list", parents=[common], help="list workflows")
    listing.add_argument("-s", "--status", action="append", help="status (repeatable)")
    listing.add_argument("--start-time", help="created at or after (RFC 3339)")
    listing.add_argument("--end-time", help="created at or before (RFC 3339)")
    listing.add_argument("-n", "--name", help="workflow function name")
    listing.add_argument("--app-version", help="application version")
    listing.add_argument("-u", "--user", help="authenticated user")
    listing.add_argument("--prefix", help="workflow ID prefix")
    listing.add_argument("-q", "--queue", help="only workflows on this queue")
    listing.add_argument("-l", "--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("-o", "--offset", type=int, help="skip this many")
    listing.add_argument("--sort-desc", action="store_true", help="newest first")
    for action in ("get", "steps", "cancel", "resume"):
        sub = wf_commands.add_parser(action, parents=[common], help=f"{action} one workflow")
        sub.add_argument("workflow_id")
    fork = wf_commands.add_parser("fork", parents=[common], help="fork a workflow from a step")
    fork.add_argument("workflow_id")
    fork.add_argument("--step", type=int, required=True, help="the function_id to restart from")
    fork.add_argument("--new-id", help="ID of the new workflow (default: a UUID)")
    fork.add_argument("--app-version", help="application version to run the fork on")

    queue = commands.add_parser("queue", help="inspect queues")
    q_commands = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    q_list = q_commands.add_parser("list", parents=[common], help="queues and their workflows")
    q_list.add_argument("--workflows", action="store_true", help="list the queued workflows")
    q_list.add_argument("-q", "--queue", help="only this queue")
    return parser


def _database_url(args: argparse.Namespace) -> str:
    url = args.db_url or os.environ.get("DBOS_SYSTEM_DATABASE_URL")
    if not url:
        raise UsageError("no database given: pass --db-url URL or set DBOS_SYSTEM_DATABASE_URL")
    return str(url)


def load_serializer(spec: str | None) -> Serializer | None:
    """``module:attr`` naming a ``Serializer`` instance or class (instantiated)."""
    import importlib

    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--serializer takes MODULE:ATTR, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--serializer {spec!r} cannot be loaded: {exc}") from None
    if isinstance(target, type):
        target = target()
    if not isinstance(target, Serializer):
        raise UsageError(
            f"--serializer {spec!r} is a {type(target).__name__}, not a dbos_core Serializer"
        )
    return target


def _run(args: argparse.Namespace, out: TextIO) -> None:
    from .client import DBOSClient

    url = _database_url(args)
    if args.command in ("migrate", "reset"):
        _schema_command(args, url, out)
        return
    serializer = load_serializer(args.serializer)
    with DBOSClient(url, dbos_system_schema=args.schema, serializer=serializer) as client:
        if args.command == "queue":
            _queue_command(client, args, out)
        else:
            _workflow_command(client, args, out)


def _emit(out: TextIO, args: argparse.Namespace, data: Any, text: str) -> None:
    out.write((json.dumps(data, indent=2, default=str) if args.json else text) + "\n")


def _schema_command(args: argparse.Namespace, url: str, out: TextIO) -> None:
    from .config import check_database_url
    from .serialization import PickleSerializer
    from .storage.database import safe_url
    from .storage.migrations import LATEST_VERSION, drop_all, migrate
    from .storage.system_database import SystemDatabase

    check_database_url(url, "--db-url")
    if args.command == "reset" and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("reset deletes every workflow; pass --yes to confirm")
        answer = input(f"Delete every workflow in {safe_url(url)}? Type 'yes': ")
        if answer.strip().lower() != "yes":
            raise UsageError("reset not confirmed")
    sysdb = SystemDatabase(url, PickleSerializer(), schema=args.schema, pool_size=2)
    try:
        sysdb.db.wait_until_reachable(10.0)
        if args.command == "reset":
            drop_all(sysdb.db)
        applied = migrate(sysdb.db)
    finally:
        sysdb.close()
    data = {"database": safe_url(url), "version": LATEST_VERSION, "applied": applied}
    verb = "reset to" if args.command == "reset" else "at"
    _emit(
        out,
        args,
        data,
        f"System database {safe_url(url)} {verb} schema version "
        f"{LATEST_VERSION} ({applied} migration(s) applied)",
    )


def _shown_with(client: Any, args: argparse.Namespace) -> Serializer | None:
    """The serializer that decodes values for display: only with ``--deserialize``."""
    return client.serializer if args.deserialize else None


def _status_of(client: Any, workflow_id: str) -> Any:
    row = client.system_database.workflows.get_outcome_row(workflow_id)
    return None if row is None else row[0]


def _workflow_command(client: Any, args: argparse.Namespace, out: TextIO) -> None:
    from .operator_views import get_workflow_view, list_step_views, list_workflow_views
    from .storage import management as ops

    sysdb = client.system_database
    shown_with = _shown_with(client, args)
    if args.action == "list":
        filters: dict[str, Any] = {
            "status": args.status,
            "start_time": args.start_time,
            "end_time": args.end_time,
            "name": args.name,
            "app_version": args.app_version,
            "user": args.user,
            "workflow_id_prefix": args.prefix,
            "limit": args.limit,
            "offset": args.offset,
            "sort_desc": args.sort_desc,
        }
        if args.queue:
            filters["queue_name"] = args.queue
        rows = list_workflow_views(sysdb, ops.build_filters(**filters), shown_with)
        _emit(out, args, rows, _format_table(rows, _STATUS_COLUMNS))
    elif args.action == "get":
        record = get_workflow_view(sysdb, args.workflow_id, shown_with)
        _emit(out, args, record, _format_record(record))
    elif args.action == "steps":
        steps = list_step_views(sysdb, args.workflow_id, shown_with)
        columns = ("function_id", "function_name", "output", "error", "child_workflow_id")
        _emit(out, args, steps, _format_table(steps, columns))
    elif args.action == "cancel":
        client.cancel_workflow(args.workflow_id)
        status = _status_of(client, args.workflow_id)
        _emit(
            out,
            args,
            {"workflow_id": args.workflow_id, "status": status},
            f"Workflow {args.workflow_id} is {status}",
        )
    elif args.action == "resume":
        client.resume_workflow(args.workflow_id)
        status = get_workflow_view(sysdb, args.workflow_id)
        _emit(
            out,
            args,
            {"workflow_id": args.workflow_id, "status": status["status"]},
            f"Workflow {args.workflow_id} is {status['status']} (queue {status['queue_name']}); "
            "an application process will run it",
        )
    elif args.action == "fork":
        handle = client.fork_workflow(
            args.workflow_id,
            args.step,
            application_version=args.app_version,
            forked_workflow_id=args.new_id,
        )
        new_id = handle.get_workflow_id()
        _emit(
            out,
            args,
            {"workflow_id": new_id, "forked_from": args.workflow_id},
            f"Forked {args.workflow_id} from step {args.step} as {new_id}",
        )


def _queue_command(client: Any, args: argparse.Namespace, out: TextIO) -> None:
    from .operator_views import list_workflow_views
    from .storage import management as ops

    if args.workflows:
        filters = ops.build_filters(queues_only=True, queue_name=args.queue)
        rows = list_workflow_views(client.system_database, filters, _shown_with(client, args))
        _emit(out, args, rows, _format_table(rows, _STATUS_COLUMNS))
        return
    summary = ops.queue_summary(client.system_database)
    if args.queue:
        summary = [q for q in summary if q["queue_name"] == args.queue]
    _emit(out, args, summary, _format_table(summary, ("queue_name", "ENQUEUED", "PENDING")))


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, prog: str = "dbos-suite"
) -> int:
    """Run one command; ``out`` and ``prog`` let a host (``manage.py dbos``) embed it."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        _run(args, out or sys.stdout)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except DBOSException as exc:
        print(f"{prog}: error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
