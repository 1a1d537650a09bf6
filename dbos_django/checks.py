"""System checks (``manage.py check``): settings.DBOS validated without touching a database."""

from __future__ import annotations

from typing import Any

from django.core import checks

MIDDLEWARE_PATH = "dbos_django.middleware.DBOSMiddleware"


def register() -> None:
    checks.register(check_settings, "dbos")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings as django_settings

    from dbos_core.config import resolve_config
    from dbos_core.error import DBOSException

    from . import conf

    try:
        parsed = conf.load()
    except conf.DBOSSettingsError as exc:
        return [checks.Error(str(exc), id="dbos_django.E001")]
    errors: list[checks.CheckMessage] = []
    try:
        config = conf.dbos_config(parsed)
        resolve_config(dict(config))
    except conf.DBOSSettingsError as exc:
        errors.append(checks.Error(str(exc), id="dbos_django.E002"))
    except DBOSException as exc:
        errors.append(
            checks.Error(f"settings.DBOS: {exc}", id="dbos_django.E003", obj="settings.DBOS")
        )
    databases = django_settings.DATABASES
    alias = parsed.transaction_database
    if alias not in databases:
        errors.append(
            checks.Error(
                f"settings.DBOS['transaction_database'] is {alias!r}, which is not in "
                f"settings.DATABASES ({', '.join(databases)})",
                id="dbos_django.E004",
            )
        )
    elif parsed.transaction_backend == "django" and databases[alias].get("ATOMIC_REQUESTS"):
        errors.append(
            checks.Warning(
                f"ATOMIC_REQUESTS is on for database {alias!r}: a DBOS transaction called "
                "from a view runs inside the request's atomic block and is refused",
                hint="Mark views that run workflows @transaction.non_atomic_requests, or "
                "start workflows with dbos_django.start_workflow_on_commit().",
                id="dbos_django.W001",
            )
        )
    if parsed.user_roles is not None:
        module, _, attr = parsed.user_roles.rpartition(".")
        try:
            from importlib import import_module

            getattr(import_module(module), attr)
        except (ImportError, AttributeError, ValueError):
            errors.append(
                checks.Error(
                    f"settings.DBOS['user_roles'] {parsed.user_roles!r} cannot be imported",
                    id="dbos_django.E005",
                )
            )
    if MIDDLEWARE_PATH not in getattr(django_settings, "MIDDLEWARE", []):
        errors.append(
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: idempotency keys and users of "
                "requests are not recorded on workflows",
                id="dbos_django.W002",
            )
        )
    return errors
