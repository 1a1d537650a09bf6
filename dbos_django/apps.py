"""The Django app: imports workflow modules, routes transactions, launches by the rule."""

from __future__ import annotations

import logging
import os
import sys
from importlib import import_module
from importlib.util import find_spec

from django.apps import AppConfig, apps

logger = logging.getLogger("dbos.django")


class DBOSDjangoConfig(AppConfig):
    name = "dbos_django"
    label = "dbos_django"
    verbose_name = "DBOS durable workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, conf, lifecycle, transactions

        checks.register()
        try:
            settings = conf.load()
        except conf.DBOSSettingsError:
            return  # reported by the system checks (manage.py check), with the reason
        import_workflow_modules(settings.workflow_modules)
        # DBOS workflow threads have no request cycle: close their connections as
        # Django does after a request (per CONN_MAX_AGE) when a workflow finishes there.
        from django.db import close_old_connections

        from dbos_core.integration import add_after_work_hook

        add_after_work_hook(close_old_connections)
        if settings.transaction_backend == "django":
            transactions.install(settings.transaction_database)
        should_launch, why = lifecycle.launch_decision(
            sys.argv, os.environ, settings, lifecycle.under_pytest()
        )
        logger.debug("DBOS launch in ready(): %s (%s)", should_launch, why)
        if should_launch:
            lifecycle.launch()


def import_workflow_modules(module_names: list[str]) -> list[str]:
    """Import ``<app>.<module>`` for every installed app that has one, so every workflow
    is registered before launch (recovery and the application version need them all)."""
    imported = []
    for app_config in apps.get_app_configs():
        for module_name in module_names:
            full = f"{app_config.name}.{module_name}"
            try:
                spec = find_spec(full)
            except ModuleNotFoundError:
                spec = None
            if spec is not None:
                import_module(full)
                imported.append(full)
    return imported
