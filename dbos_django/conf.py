"""The ``DBOS`` setting, read in one place.

``settings.DBOS`` holds the ``DBOSConfig`` fields (``name``, ``system_database_url``, ...)
plus a few Django-only keys (see ``DJANGO_KEYS``). The system database is either a URL
or a Django database alias (``system_database_alias``); without either it is the
``default`` alias, so tests run against Django's test database automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbos_core import DBOSConfig
from dbos_core.config import KNOWN_KEYS
from dbos_core.integration import DEFAULT_IDEMPOTENCY_HEADER, DEFAULT_REQUEST_ID_HEADER

# Keys of settings.DBOS that are not DBOSConfig fields, with their defaults.
DJANGO_KEYS: dict[str, Any] = {
    # Django database alias whose connection settings give the system database URL.
    "system_database_alias": None,
    # Alias used by @DBOS.transaction and @dbos_django.transaction() without using=.
    "transaction_database": "default",
    # "django" routes @DBOS.transaction to the Django ORM; "sqlalchemy" keeps the core's.
    "transaction_backend": "django",
    # Module name imported from every installed app before launch (None: import none).
    "workflow_modules": ["workflows"],
    # False: never launch automatically; call dbos_django.launch() yourself.
    "auto_launch": True,
    # Management commands whose serving process launches DBOS in AppConfig.ready().
    "launch_commands": ["runserver"],
    "idempotency_header": DEFAULT_IDEMPOTENCY_HEADER,
    "request_id_header": DEFAULT_REQUEST_ID_HEADER,
    # Dotted path of a callable(user) -> list of role names; default: the user's groups.
    "user_roles": None,
    # Answer DBOS errors raised by views with JSON (status from the error).
    "handle_errors": True,
}

SUPPORTED_ENGINES = ("django.db.backends.sqlite3", "django.db.backends.postgresql")


class DBOSSettingsError(Exception):
    """settings.DBOS is wrong; the message says which key and why."""


@dataclass
class DjangoDBOSSettings:
    dbos: dict[str, Any]
    system_database_alias: str | None
    transaction_database: str
    transaction_backend: str
    workflow_modules: list[str]
    auto_launch: bool
    launch_commands: list[str]
    idempotency_header: str
    request_id_header: str
    user_roles: str | None
    handle_errors: bool
    extra: dict[str, Any] = field(default_factory=dict)


def raw_settings() -> dict[str, Any]:
    from django.conf import settings

    value = getattr(settings, "DBOS", None)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DBOSSettingsError(f"settings.DBOS must be a dict, got {type(value).__name__}")
    return dict(value)


def load() -> DjangoDBOSSettings:
    """Parse settings.DBOS (no I/O); raises DBOSSettingsError naming the bad key."""
    raw = raw_settings()
    unknown = sorted(set(raw) - set(KNOWN_KEYS) - set(DJANGO_KEYS))
    if unknown:
        raise DBOSSettingsError(
            f"settings.DBOS has unknown key(s) {', '.join(map(repr, unknown))}; use DBOSConfig "
            f"fields ({', '.join(sorted(KNOWN_KEYS))}) or the Django keys "
            f"({', '.join(sorted(DJANGO_KEYS))})"
        )
    values = {key: raw.get(key, default) for key, default in DJANGO_KEYS.items()}
    for key in ("system_database_alias", "user_roles"):
        if values[key] is not None and (not isinstance(values[key], str) or not values[key]):
            raise DBOSSettingsError(f"settings.DBOS[{key!r}] must be a non-empty string")
    for key in ("transaction_database", "idempotency_header", "request_id_header"):
        if not isinstance(values[key], str) or not values[key]:
            raise DBOSSettingsError(f"settings.DBOS[{key!r}] must be a non-empty string")
    if values["transaction_backend"] not in ("django", "sqlalchemy"):
        raise DBOSSettingsError(
            "settings.DBOS['transaction_backend'] must be 'django' or 'sqlalchemy', got "
            f"{values['transaction_backend']!r}"
        )
    modules = values["workflow_modules"]
    if modules is None:
        modules = []
    if isinstance(modules, str):
        modules = [modules]
    if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) and m for m in modules):
        raise DBOSSettingsError(
            "settings.DBOS['workflow_modules'] must be a list of module names such as ['workflows']"
        )
    commands = values["launch_commands"]
    if not isinstance(commands, (list, tuple)) or not all(isinstance(c, str) for c in commands):
        raise DBOSSettingsError("settings.DBOS['launch_commands'] must be a list of command names")
    for key in ("auto_launch", "handle_errors"):
        if not isinstance(values[key], bool):
            raise DBOSSettingsError(f"settings.DBOS[{key!r}] must be True or False")
    if raw.get("system_database_url") and values["system_database_alias"]:
        raise DBOSSettingsError(
            "settings.DBOS sets both 'system_database_url' and 'system_database_alias'; "
            "give only one"
        )
    dbos = {k: v for k, v in raw.items() if k in KNOWN_KEYS}
    dbos.setdefault("name", "django-app")
    return DjangoDBOSSettings(
        dbos=dbos,
        system_database_alias=values["system_database_alias"],
        transaction_database=values["transaction_database"],
        transaction_backend=values["transaction_backend"],
        workflow_modules=list(modules),
        auto_launch=values["auto_launch"],
        launch_commands=list(commands),
        idempotency_header=values["idempotency_header"],
        request_id_header=values["request_id_header"],
        user_roles=values["user_roles"],
        handle_errors=values["handle_errors"],
    )


def url_for_alias(alias: str) -> str:
    """A SQLAlchemy URL for a Django database alias, as it is *now* (the test database
    name once the test runner has switched to it)."""
    from django.db import connections

    if alias not in connections.settings:
        raise DBOSSettingsError(
            f"settings.DBOS names the database alias {alias!r}, which is not in "
            f"settings.DATABASES ({', '.join(connections.settings)})"
        )
    db = connections[alias].settings_dict
    engine = db.get("ENGINE", "")
    name = str(db.get("NAME") or "")
    if engine == "django.db.backends.sqlite3":
        if not name or name == ":memory:" or "mode=memory" in name or name.startswith("file:"):
            raise DBOSSettingsError(
                f"Database alias {alias!r} is an in-memory SQLite database, which cannot hold "
                "durable workflows; give it a file NAME (for tests, set "
                f"DATABASES[{alias!r}]['TEST']['NAME'] to a file path)"
            )
        from pathlib import Path

        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        from sqlalchemy.engine import URL

        port = db.get("PORT")
        url = URL.create(
            "postgresql+psycopg",
            username=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or "localhost",
            port=int(port) if port else None,
            database=name,
        )
        return url.render_as_string(hide_password=False)
    raise DBOSSettingsError(
        f"Database alias {alias!r} uses {engine!r}; DBOS supports "
        + " and ".join(SUPPORTED_ENGINES)
    )


def dbos_config(parsed: DjangoDBOSSettings | None = None) -> DBOSConfig:
    """The DBOSConfig to launch with, the system database URL resolved now."""
    parsed = parsed or load()
    config: dict[str, Any] = dict(parsed.dbos)
    if not config.get("system_database_url"):
        config["system_database_url"] = url_for_alias(parsed.system_database_alias or "default")
    return config  # type: ignore[return-value]
