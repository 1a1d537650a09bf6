"""When DBOS launches in a Django project (the rule is documented in the Django section of README.md).

1. ``settings.DBOS['auto_launch'] = False``: never automatically.
2. ``manage.py <command>``: only the serving process of a command in ``launch_commands``
   (default ``runserver``: the child the autoreloader starts, marked ``RUN_MAIN=true``, or
   the only process with ``--noreload``) launches in ``AppConfig.ready()``.
   ``manage.py dbos worker`` launches itself. Every other command (migrate,
   makemigrations, collectstatic, check, shell, test, ...) never launches.
3. Under pytest: never; tests launch it with the ``django_dbos`` fixture.
4. Imported by a WSGI/ASGI server (gunicorn, uvicorn, daphne, mod_wsgi): ``ready()`` may
   run in a master process that forks later, so it does not launch there. Each serving
   process launches on its first request (the middleware), or earlier through
   ``dbos_django.launch()`` in wsgi.py/asgi.py or ``dbos_django.post_fork`` in gunicorn.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dbos_core import DBOS, integration

from . import conf

logger = logging.getLogger("dbos.django")

_MANAGE_SCRIPTS = ("manage.py", "django-admin", "django-admin.py")


def management_command(argv: Sequence[str]) -> str | None:
    """The management command this process runs, or None when it is not manage.py."""
    if not argv:
        return None
    script = os.path.basename(argv[0])
    is_manage = script in _MANAGE_SCRIPTS or argv[0].endswith(os.path.join("django", "__main__.py"))
    if not is_manage:
        return None
    return argv[1] if len(argv) > 1 else ""


def launch_decision(
    argv: Sequence[str],
    environ: Mapping[str, str],
    settings: conf.DjangoDBOSSettings,
    under_pytest: bool,
) -> tuple[bool, str]:
    """(launch in ready()?, why) for this process."""
    if not settings.auto_launch:
        return False, "settings.DBOS['auto_launch'] is False"
    command = management_command(argv)
    if command is not None:
        if command in settings.launch_commands:
            if "--noreload" in argv or environ.get("RUN_MAIN") == "true":
                return True, f"serving process of manage.py {command}"
            return False, f"file-watcher parent of manage.py {command}"
        return False, f"manage.py {command or '(none)'} does not serve"
    if under_pytest:
        return False, "test runner: use the django_dbos fixture"
    return False, "server process: launched by the middleware or dbos_django.launch()"


def under_pytest() -> bool:
    return "pytest" in sys.modules and "_pytest" in sys.modules


def configure() -> None:
    """``DBOS(config=...)`` from settings, unless the project configured DBOS itself."""
    if not integration.is_configured():
        DBOS(config=conf.dbos_config())


def launch() -> None:
    """Configure (from settings) and launch DBOS in this process; safe to call repeatedly.

    The seam's guard launches once per process and refuses a DBOS launched in a parent
    before it forked (gunicorn --preload must launch in ``post_fork``, not at import)."""
    integration.ensure_launched(configure)


def ensure_launched_for_request() -> None:
    """The middleware's lazy launch: once per serving process, never under pytest."""
    if integration.is_launched() or under_pytest():
        return
    settings = conf.load()
    if settings.auto_launch:
        launch()


def post_fork(server: Any = None, worker: Any = None) -> None:
    """gunicorn hook: ``post_fork = dbos_django.post_fork`` in gunicorn.conf.py."""
    launch()


def destroy() -> None:
    integration.destroy_launched()
