"""``python manage.py dbos ...``: a worker, and the system-database commands of the core CLI.

    manage.py dbos worker                     launch DBOS and run until SIGINT/SIGTERM
    manage.py dbos migrate                    create or upgrade the system tables
    manage.py dbos reset --yes                drop and recreate them
    manage.py dbos workflow list|get|steps|cancel|resume|fork ...
    manage.py dbos queue list [--workflows]

The system database comes from settings.DBOS (its URL or Django alias) unless --db-url
is given.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dbos_core import cli, integration

from ... import conf, lifecycle


class Command(BaseCommand):
    help = (
        "DBOS durable workflows: `worker` runs queues, schedules and recovery without the "
        "web server; `migrate`, `reset --yes`, `workflow list|get|steps|cancel|resume|fork`, "
        "`queue list` manage the system database (`manage.py dbos workflow --help` for more)."
    )
    # The worker must not wait for migrations checks; the rest only reads settings.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dbos_args",
            nargs=argparse.REMAINDER,
            metavar="COMMAND ...",
            help="worker | migrate | reset | workflow ... | queue ...",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dbos_args: list[str] = list(options["dbos_args"])
        if not dbos_args:
            raise CommandError("give a command: worker, migrate, reset, workflow or queue")
        if dbos_args[0] == "worker":
            self._worker(dbos_args[1:])
            return
        try:
            settings = conf.load()
            if "--db-url" not in dbos_args and "-D" not in dbos_args and len(dbos_args) > 0:
                config = conf.dbos_config(settings)
                extra = ["--db-url", str(config["system_database_url"])]
                schema = config.get("dbos_system_schema")
                if schema and "--schema" not in dbos_args:
                    extra += ["--schema", str(schema)]
                dbos_args = _with_options(dbos_args, extra)
        except conf.DBOSSettingsError as exc:
            raise CommandError(str(exc)) from None
        code = cli.main(dbos_args, out=self.stdout, prog="manage.py dbos")
        if code:
            sys.exit(code)

    def _worker(self, args: list[str]) -> None:
        if args:
            raise CommandError(f"manage.py dbos worker takes no arguments, got {' '.join(args)}")

        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        integration.run_worker(lifecycle.launch, lifecycle.destroy, say)


def _with_options(dbos_args: list[str], extra: list[str]) -> list[str]:
    """Insert options after the (sub)command words, where the core CLI's parser reads them."""
    words = 2 if dbos_args[0] in ("workflow", "queue") else 1
    if len(dbos_args) < words or any(a in ("-h", "--help") for a in dbos_args):
        return dbos_args
    return [*dbos_args[:words], *extra, *dbos_args[words:]]
