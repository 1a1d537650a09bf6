"""The Django ORM (``dbos_django``): models written with Django's manager, on a database
alias added for the test's own application database."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import django
from django.conf import settings

from dbos_core import DBOS
from tests.transactions import common, harness

P = "suite.django_orm"
ALIAS = "dbos_txn_suite"

if not settings.configured:
    # A process of its own (the crash tests' child): the smallest Django project.
    settings.configure(
        INSTALLED_APPS=["dbos_django"],
        DATABASES={},
        USE_TZ=True,
        DBOS={"name": "txn-suite", "auto_launch": False},
    )
django.setup()

from django.db import connections, models  # noqa: E402


class DjangoItem(models.Model):
    name = models.TextField(unique=True)

    class Meta:
        app_label = "dbos_txn_suite"
        db_table = "txn_items"
        managed = False


class DjangoCounter(models.Model):
    id = models.IntegerField(primary_key=True)
    value = models.IntegerField()

    class Meta:
        app_label = "dbos_txn_suite"
        db_table = "txn_counters"
        managed = False


def _insert(name: str) -> int:
    DjangoItem.objects.using(ALIAS).create(name=name)
    return DjangoItem.objects.using(ALIAS).count()


@DBOS.transaction(name=f"{P}.add_item")
def add_item(name: str, fail: bool) -> int:
    common.record(f"add_item:{name}")
    assert DBOS.sql_session is connections[ALIAS]
    count = _insert(name)
    common.crash_point_in_body()
    if fail:
        raise ValueError(f"refused {name}")
    return count


@DBOS.workflow(name=f"{P}.add_item_workflow")
def add_item_workflow(name: str, fail: bool) -> int:
    return add_item(name, fail)


@DBOS.transaction(name=f"{P}.bump")
def bump(label: str) -> int:
    counter = DjangoCounter.objects.using(ALIAS).get(id=1)
    common.race.after_read(label)
    counter.value += 1
    counter.save(using=ALIAS)
    return counter.value


@DBOS.workflow(name=f"{P}.bump_workflow")
def bump_workflow(label: str) -> int:
    return bump(label)


def _level() -> str:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        return str(cursor.fetchone()[0])


@DBOS.transaction(name=f"{P}.level_default")
def level_default() -> str:
    return _level()


@DBOS.transaction("REPEATABLE READ", name=f"{P}.level_declared")
def level_declared() -> str:
    return _level()


@DBOS.workflow(name=f"{P}.isolation_workflow")
def isolation_workflow() -> tuple[str, str]:
    return level_default(), level_declared()


def insert_body(name: str) -> Callable[[Any], int]:
    return lambda session: _insert(name)


def database_settings(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.split(":///", 1)[1]}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


class Harness(harness.Harness):
    name = "django-orm"

    @property
    def ops(self) -> ModuleType:
        import sys

        return sys.modules[__name__]

    def launch(self) -> None:
        from django.core.management import call_command

        from dbos_django import transactions

        # Point the alias at this test's application database.
        cfg = database_settings(self.app_url)
        settings.DATABASES[ALIAS] = cfg
        full = connections.configure_settings({"default": {}, ALIAS: dict(cfg)})[ALIAS]
        connections.settings[ALIAS] = full
        # The checkpoint table comes with Django's migrations of dbos_django.
        call_command("migrate", "dbos_django", database=ALIAS, skip_checks=True, verbosity=0)
        connections[ALIAS].close()
        transactions.install(ALIAS)
        DBOS(config=self.base_config())
        DBOS.launch()

    def destroy(self) -> None:
        from dbos_core.integration import set_transaction_backend_factory

        super().destroy()
        set_transaction_backend_factory(None)
        connections[ALIAS].close()
        del connections[ALIAS]
        connections.settings.pop(ALIAS, None)
        settings.DATABASES.pop(ALIAS, None)
