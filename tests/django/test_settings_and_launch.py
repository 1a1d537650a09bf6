"""Settings, system checks and the launch rule."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from dbos_django import conf, lifecycle
from dbos_django.apps import import_workflow_modules
from dbos_django.checks import check_settings

BASE = {"name": "t", "system_database_alias": "system"}


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_valid_settings_pass() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("dbos", "code", "text"),
    [
        ({**BASE, "nmae": "typo"}, "dbos_django.E001", "'nmae'"),
        ({**BASE, "workflow_modules": 3}, "dbos_django.E001", "workflow_modules"),
        ({**BASE, "auto_launch": "yes"}, "dbos_django.E001", "auto_launch"),
        ({"name": "t", "system_database_alias": "nope"}, "dbos_django.E002", "'nope'"),
        ({"name": "t", "system_database_url": "mysql://x/y"}, "dbos_django.E003", "mysql"),
        ({"name": "bad name!", "system_database_alias": "system"}, "dbos_django.E003", "name"),
        ({**BASE, "transaction_database": "nope"}, "dbos_django.E004", "'nope'"),
        ({**BASE, "user_roles": "no.such.module.fn"}, "dbos_django.E005", "user_roles"),
    ],
)
def test_bad_settings_are_reported(dbos: dict[str, Any], code: str, text: str) -> None:
    with override_settings(DBOS=dbos):
        messages = check_settings()
    assert code in ids(messages), messages
    assert any(text in m.msg for m in messages)


def test_url_and_alias_together_is_an_error() -> None:
    with override_settings(DBOS={**BASE, "system_database_url": "sqlite:///x.sqlite"}):
        assert ids(check_settings()) == ["dbos_django.E001"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_atomic_requests_and_missing_middleware_warn() -> None:
    from django.conf import settings

    databases = {k: dict(v) for k, v in settings.DATABASES.items()}
    databases["default"]["ATOMIC_REQUESTS"] = True
    with override_settings(DATABASES=databases):
        assert "dbos_django.W001" in ids(check_settings())
    with override_settings(MIDDLEWARE=[]):
        assert ids(check_settings()) == ["dbos_django.W002"]


def test_in_memory_sqlite_alias_is_refused() -> None:
    from django.db import connections

    settings_dict = connections["system"].settings_dict
    saved = dict(settings_dict)
    settings_dict.update(ENGINE="django.db.backends.sqlite3", NAME=":memory:")
    try:
        with pytest.raises(conf.DBOSSettingsError, match="in-memory"):
            conf.url_for_alias("system")
        settings_dict["ENGINE"] = "django.db.backends.mysql"
        with pytest.raises(conf.DBOSSettingsError, match="supports"):
            conf.url_for_alias("system")
    finally:
        settings_dict.clear()
        settings_dict.update(saved)


def test_url_for_alias_follows_the_alias() -> None:
    from django.db import connections

    url = conf.url_for_alias("system")
    assert str(connections["system"].settings_dict["NAME"]) in url
    assert conf.dbos_config()["system_database_url"] == url


def test_workflow_modules_of_installed_apps_are_imported() -> None:
    assert import_workflow_modules(["workflows"]) == ["tests.django.testapp.workflows"]
    assert import_workflow_modules(["no_such_module"]) == []


SETTINGS = conf.DjangoDBOSSettings(
    dbos={},
    system_database_alias=None,
    transaction_database="default",
    transaction_backend="django",
    workflow_modules=["workflows"],
    auto_launch=True,
    launch_commands=["runserver"],
    idempotency_header="dbos-idempotency-key",
    request_id_header="x-request-id",
    user_roles=None,
    handle_errors=True,
)


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["manage.py", "runserver"], {}, False),  # the file-watcher parent
        (["/srv/app/manage.py", "migrate"], {}, False),
        (["manage.py", "makemigrations"], {}, False),
        (["manage.py", "collectstatic", "--noinput"], {}, False),
        (["manage.py", "check"], {}, False),
        (["manage.py", "shell"], {}, False),
        (["manage.py", "test"], {}, False),
        (["manage.py", "dbos", "worker"], {}, False),  # the command launches itself
        (["django-admin", "migrate"], {"RUN_MAIN": "true"}, False),
        (["/usr/lib/python3/site-packages/django/__main__.py", "runserver"], {}, False),
        (["/venv/bin/gunicorn", "proj.wsgi"], {}, False),  # the middleware launches
    ],
)
def test_launch_rule(argv: list[str], environ: dict[str, str], expected: bool) -> None:
    launch, why = lifecycle.launch_decision(argv, environ, SETTINGS, under_pytest=False)
    assert launch is expected, why


def test_launch_rule_respects_auto_launch_and_pytest() -> None:
    off = conf.DjangoDBOSSettings(**{**SETTINGS.__dict__, "auto_launch": False})
    assert (
        lifecycle.launch_decision(["manage.py", "runserver", "--noreload"], {}, off, False)[0]
        is False
    )
    assert lifecycle.launch_decision(["pytest"], {}, SETTINGS, True) == (
        False,
        "test runner: use the django_dbos fixture",
    )
    assert lifecycle.under_pytest()
