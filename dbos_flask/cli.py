"""``flask dbos ...``: manage the system database and workflows of the app.

Commands configure DBOS from the app (``app.config``) in this short-lived
process. Inspecting and changing workflows opens a management session: it
connects and migrates, but recovers nothing and runs no queue or schedule, so
it never takes work away from the serving processes. ``worker`` is the one
command that launches fully: it runs queues, schedules and recovery without
the web server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from dbos_core import DBOS
from dbos_core import integration as seam
from dbos_core.error import DBOSException

dbos_cli = AppGroup("dbos", help="Durable workflows (DBOS): database, workflows, worker.")
workflow_cli = AppGroup("workflow", help="Inspect and manage workflows.")
queue_cli = AppGroup("queue", help="Inspect queues.")
dbos_cli.add_command(workflow_cli)
dbos_cli.add_command(queue_cli)


def _configure() -> None:
    """Configure DBOS from the current app (no connection yet)."""
    from .extension import state_of

    state = state_of(current_app)
    if state.config is not None:
        DBOS(config=state.config)
    elif not seam.is_configured():
        raise click.ClickException("DBOS is not configured: set DBOS_* keys in app.config")


def _fail(exc: DBOSException) -> click.ClickException:
    return click.ClickException(f"{exc.code}: {exc.message}")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=repr))


_DESERIALIZE_HELP = (
    "Show inputs and outputs decoded by the app's serializer. With pickle this runs code "
    "read from the database: only for a database you trust like your code."
)


def _management_method(name: str) -> Callable[..., Any]:
    method = getattr(DBOS, name, None)
    if method is None:
        raise click.ClickException(
            f"This version of dbos_core has no DBOS.{name}(); upgrade it to use this command"
        )
    return method  # type: ignore[no-any-return]


def _run(action: Callable[[], Any]) -> Any:
    """Run a management action in a session, turning DBOS errors into CLI errors."""
    _configure()
    try:
        with seam.management_session():
            return action()
    except DBOSException as exc:
        raise _fail(exc) from exc


# -- database ---------------------------------------------------------------------


@dbos_cli.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the DBOS system database, and the checkpoint table of
    transactions in the app's Flask-SQLAlchemy database (with DBOSFlask(db=...))."""
    from .transactions import CHECKPOINT_TABLE, create_checkpoint_tables

    _configure()
    try:
        seam.migrate_system_database()
    except DBOSException as exc:
        raise _fail(exc) from exc
    finally:
        seam.destroy()
    click.echo("DBOS system database is up to date")
    for bind_key in create_checkpoint_tables(current_app):
        where = "default bind" if bind_key is None else f"bind {bind_key!r}"
        click.echo(f"DBOS checkpoint table {CHECKPOINT_TABLE} is ready ({where})")


@dbos_cli.command("reset")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def reset_command(yes: bool) -> None:
    """Delete every workflow record: drop and recreate the system database tables."""
    if not yes:
        click.confirm("This deletes all DBOS workflow records. Continue?", abort=True)
    _configure()
    try:
        DBOS.reset_system_database()
    except DBOSException as exc:
        raise _fail(exc) from exc
    finally:
        seam.destroy()
    click.echo("DBOS system database reset")


# -- worker -----------------------------------------------------------------------


@dbos_cli.command("worker")
def worker_command() -> None:
    """Launch DBOS and run recovery, queues and schedules until SIGINT or SIGTERM."""
    from .extension import state_of

    state = state_of(current_app)
    try:
        seam.run_worker(
            state.launch, state.extension.destroy, lambda line: click.echo(line, err=True)
        )
    except DBOSException as exc:
        raise _fail(exc) from exc


# -- workflows --------------------------------------------------------------------


@workflow_cli.command("get")
@click.argument("workflow_id")
@click.option("--deserialize", is_flag=True, help=_DESERIALIZE_HELP)
def workflow_get(workflow_id: str, deserialize: bool) -> None:
    """Show the status of one workflow as JSON."""
    _echo_json(_run(lambda: seam.workflow_view(workflow_id, deserialize=deserialize)))


@workflow_cli.command("list")
@click.option("--status", "-S", "status", multiple=True, help="Only this status (repeatable).")
@click.option("--name", "-n", default=None, help="Only workflows of this function name.")
@click.option("--user", "-u", default=None, help="Only workflows run by this user.")
@click.option("--app-version", "-v", default=None, help="Only this application version.")
@click.option("--start-time", "-s", default=None, help="Started after (RFC 3339).")
@click.option("--end-time", "-e", default=None, help="Started before (RFC 3339).")
@click.option("--limit", "-l", type=int, default=10, show_default=True)
@click.option("--offset", "-o", type=int, default=None)
@click.option("--sort-desc", "-d", is_flag=True, help="Newest first.")
@click.option("--deserialize", is_flag=True, help=_DESERIALIZE_HELP)
def workflow_list(
    status: tuple[str, ...],
    name: str | None,
    user: str | None,
    app_version: str | None,
    start_time: str | None,
    end_time: str | None,
    limit: int,
    offset: int | None,
    sort_desc: bool,
    deserialize: bool,
) -> None:
    """List workflows as JSON."""
    rows = _run(
        lambda: seam.workflow_views(
            deserialize=deserialize,
            status=list(status) or None,
            name=name,
            user=user,
            app_version=app_version,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            offset=offset,
            sort_desc=sort_desc,
        )
    )
    _echo_json(rows)


@workflow_cli.command("steps")
@click.argument("workflow_id")
@click.option("--deserialize", is_flag=True, help=_DESERIALIZE_HELP)
def workflow_steps(workflow_id: str, deserialize: bool) -> None:
    """List the recorded steps of a workflow as JSON."""
    _echo_json(_run(lambda: seam.step_views(workflow_id, deserialize=deserialize)))


@workflow_cli.command("cancel")
@click.argument("workflow_id")
def workflow_cancel(workflow_id: str) -> None:
    """Cancel a workflow (it stops at the start of its next step)."""
    cancel = _management_method("cancel_workflow")
    _run(lambda: cancel(workflow_id))
    click.echo(f"Cancelled workflow {workflow_id}")


def _finish(handle: Any, wait: bool) -> None:
    if not wait:
        click.echo(handle.get_workflow_id())
        return
    try:
        handle.get_result()
    except DBOSException as exc:
        raise _fail(exc) from exc
    except Exception as exc:
        click.echo(f"workflow {handle.get_workflow_id()} failed: {exc!r}", err=True)
    _echo_json(seam.workflow_view(handle.get_workflow_id()))


_WAIT_HELP = (
    "Wait for the workflow to finish and print its status (default). With --no-wait, "
    "print its ID and return at once."
)


@workflow_cli.command("resume")
@click.argument("workflow_id")
@click.option("--wait/--no-wait", default=True, help=_WAIT_HELP)
def workflow_resume(workflow_id: str, wait: bool) -> None:
    """Resume a workflow from its last completed step."""
    resume = _management_method("resume_workflow")
    _run(lambda: _finish(resume(workflow_id), wait))


@workflow_cli.command("fork")
@click.argument("workflow_id")
@click.option(
    "--step",
    "-s",
    "start_step",
    type=int,
    default=1,
    show_default=True,
    help="Re-execute from this step (function_id); earlier steps are reused.",
)
@click.option("--application-version", "-v", default=None)
@click.option("--wait/--no-wait", default=True, help=_WAIT_HELP)
def workflow_fork(
    workflow_id: str, start_step: int, application_version: str | None, wait: bool
) -> None:
    """Start a new execution of a workflow from one of its steps."""
    fork = _management_method("fork_workflow")

    def action() -> None:
        kwargs = {} if application_version is None else {"application_version": application_version}
        _finish(fork(workflow_id, start_step, **kwargs), wait)

    _run(action)


# -- queues -----------------------------------------------------------------------


@queue_cli.command("list")
@click.option("--queue", "-q", "queue_name", default=None, help="Only this queue.")
@click.option("--status", "-S", "status", multiple=True, help="ENQUEUED or PENDING.")
@click.option("--name", "-n", default=None, help="Only workflows of this function name.")
@click.option("--limit", "-l", type=int, default=10, show_default=True)
@click.option("--sort-desc", "-d", is_flag=True)
def queue_list(
    queue_name: str | None, status: tuple[str, ...], name: str | None, limit: int, sort_desc: bool
) -> None:
    """List the workflows currently enqueued (or running from a queue) as JSON."""
    rows = _run(
        lambda: seam.workflow_views(
            queues_only=True,
            load_output=False,
            queue_name=queue_name,
            status=list(status) or None,
            name=name,
            limit=limit,
            sort_desc=sort_desc,
        )
    )
    _echo_json(rows)
