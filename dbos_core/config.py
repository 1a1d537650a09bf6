"""The ``DBOSConfig`` shape, its defaults and its validation. No I/O here."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from .error import DBOSConfigurationError
from .identifiers import check_schema_name
from .serialization import PickleSerializer, Serializer

if TYPE_CHECKING:
    import sqlalchemy


class DBOSConfig(TypedDict, total=False):
    """Configuration passed to ``DBOS(config=...)``; only ``name`` is required."""

    name: str
    system_database_url: str | None
    application_database_url: str | None
    sys_db_pool_size: int | None
    db_engine_kwargs: dict[str, Any] | None
    dbos_system_schema: str | None
    system_database_engine: sqlalchemy.Engine | None
    conductor_key: str | None
    enable_otlp: bool | None
    otlp_traces_endpoints: list[str] | None
    otlp_logs_endpoints: list[str] | None
    otlp_attributes: dict[str, str] | None
    log_level: str | None
    run_admin_server: bool | None
    admin_port: int | None
    admin_host: str | None
    admin_token: str | None
    # Host names (and host:port) the admin server answers besides its loopback names.
    admin_allowed_hosts: list[str] | None
    # True: the admin server and the Django admin decode stored values with the
    # application's serializer (with pickle, whoever can write the database runs code).
    admin_deserialize_values: bool | None
    application_version: str | None
    executor_id: str | None
    serializer: Serializer | None
    # How often, in seconds, waiters re-check the database when no notification can
    # reach them (SQLite shared by several processes). Not in the seeds; ours.
    notification_poll_interval: float | None
    # Seconds to keep retrying an unreachable system database at launch.
    database_connect_timeout: float | None
    max_workflow_threads: int | None
    # Seconds between checks for PENDING workflows of dead processes to take over.
    recovery_interval: float | None
    # Prometheus metrics (extra "metrics"): served at /metrics by the admin server and
    # by the adapters' metrics views. Not in the seeds; ours.
    enable_metrics: bool | None


KNOWN_KEYS = frozenset(DBOSConfig.__annotations__)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_ENGINE_KWARGS: dict[str, Any] = {"pool_size": 20, "max_overflow": 0, "pool_timeout": 30}


@dataclass
class ResolvedConfig:
    """A validated configuration with every default filled in."""

    name: str
    system_database_url: str
    application_database_url: str | None
    sys_db_pool_size: int
    db_engine_kwargs: dict[str, Any]
    dbos_system_schema: str
    system_database_engine: Any
    log_level: str
    run_admin_server: bool
    admin_port: int
    admin_host: str
    admin_token: str | None
    application_version: str | None
    executor_id: str
    serializer: Serializer
    notification_poll_interval: float
    database_connect_timeout: float
    max_workflow_threads: int
    recovery_interval: float
    raw: dict[str, Any] = field(default_factory=dict)
    admin_allowed_hosts: list[str] = field(default_factory=list)
    admin_deserialize_values: bool = False
    # Observability (dbos_core/observability): OpenTelemetry as the seeds configure it.
    enable_otlp: bool = False
    otlp_traces_endpoints: list[str] = field(default_factory=list)
    otlp_logs_endpoints: list[str] = field(default_factory=list)
    otlp_attributes: dict[str, str] = field(default_factory=dict)
    enable_metrics: bool = False


def _positive_int(config: dict[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DBOSConfigurationError(
            f"DBOSConfig[{key!r}] must be a positive integer, got {value!r}"
        )
    return value


def _positive_float(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise DBOSConfigurationError(
            f"DBOSConfig[{key!r}] must be a positive number, got {value!r}"
        )
    return float(value)


def _optional_str(config: dict[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise DBOSConfigurationError(
            f"DBOSConfig[{key!r}] must be a non-empty string, got {value!r}"
        )
    return value


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach (decided without a DNS lookup:
    a host name other than ``localhost`` counts as reachable from elsewhere)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_database_url(url: str, key: str) -> str:
    """Refuse URLs we cannot use, naming what is wrong, before any connection is tried."""
    if not isinstance(url, str) or not url.strip():
        raise DBOSConfigurationError(f"{key} must be a non-empty database URL, got {url!r}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DBOSConfigurationError(
            f"{key} {url!r} is not a database URL; expected sqlite:///path/to/file.sqlite "
            "or postgresql://user:password@host:port/database"
        )
    dialect = scheme.split("+", 1)[0].lower()
    if dialect not in ("sqlite", "postgresql", "postgres"):
        raise DBOSConfigurationError(
            f"{key} {url!r} uses the unsupported database {scheme!r}; use sqlite:// or postgresql://"
        )
    if dialect == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if rest and not rest.startswith("/"):
            raise DBOSConfigurationError(
                f"{key} {url!r} is malformed: SQLite URLs look like sqlite:///relative.sqlite "
                "or sqlite:////absolute/path.sqlite"
            )
        if path in ("", ":memory:") or "mode=memory" in path:
            raise DBOSConfigurationError(
                f"{key} {url!r} names an in-memory SQLite database, which cannot be durable "
                "or shared between connections; give a file path"
            )
    else:
        host_part = rest.split("/", 1)[0]
        if "/" not in rest or not rest.split("/", 1)[1].split("?", 1)[0]:
            raise DBOSConfigurationError(
                f"{key} {url!r} is malformed: PostgreSQL URLs need a database name, as in "
                "postgresql://user:password@host:5432/database"
            )
        if not host_part.rsplit("@", 1)[-1] and "host=" not in rest:
            raise DBOSConfigurationError(f"{key} {url!r} is malformed: it names no host")
    return url


def resolve_config(config: DBOSConfig | dict[str, Any]) -> ResolvedConfig:
    """Validate a user's ``DBOSConfig`` and fill in every default."""
    if not isinstance(config, dict):
        raise DBOSConfigurationError(
            f"DBOS config must be a dict (DBOSConfig), got {type(config).__name__}"
        )
    raw: dict[str, Any] = dict(config)
    unknown = sorted(set(raw) - KNOWN_KEYS - {"database_url"})
    if unknown:
        raise DBOSConfigurationError(
            f"Unknown DBOSConfig key(s) {', '.join(map(repr, unknown))}; known keys are "
            + ", ".join(sorted(KNOWN_KEYS))
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise DBOSConfigurationError(
            "DBOSConfig['name'] is required and must be a non-empty string"
        )
    if not _NAME_RE.match(name):
        raise DBOSConfigurationError(
            f"DBOSConfig['name'] {name!r} may only contain letters, digits, '_', '-' and '.'"
        )

    engine = raw.get("system_database_engine")
    # The seeds' testing fixture passes "database_url"; treat it as the system database.
    url = raw.get("system_database_url") or raw.get("database_url")
    if url is None and engine is not None:
        url = engine.url.render_as_string(hide_password=False)
    if url is None:
        url = os.environ.get("DBOS_SYSTEM_DATABASE_URL") or f"sqlite:///{name}.sqlite"
    check_database_url(url, "system_database_url")
    app_url = _optional_str(raw, "application_database_url")
    if app_url is not None:
        check_database_url(app_url, "application_database_url")

    engine_kwargs = raw.get("db_engine_kwargs")
    if engine_kwargs is not None and not isinstance(engine_kwargs, dict):
        raise DBOSConfigurationError(
            f"DBOSConfig['db_engine_kwargs'] must be a dict, got {engine_kwargs!r}"
        )
    schema = check_schema_name(
        raw.get("dbos_system_schema") or "dbos", "DBOSConfig['dbos_system_schema']"
    )
    log_level = raw.get("log_level") or "INFO"
    if not isinstance(log_level, str) or log_level.upper() not in _LOG_LEVELS:
        raise DBOSConfigurationError(
            f"DBOSConfig['log_level'] {log_level!r} must be one of {', '.join(_LOG_LEVELS)}"
        )
    serializer = raw.get("serializer") or PickleSerializer()
    if not isinstance(serializer, Serializer):
        raise DBOSConfigurationError(
            "DBOSConfig['serializer'] must be an instance of dbos_core.Serializer, got "
            f"{type(serializer).__name__}"
        )
    run_admin = raw.get("run_admin_server")
    if run_admin is not None and not isinstance(run_admin, bool):
        raise DBOSConfigurationError(
            f"DBOSConfig['run_admin_server'] must be a bool, got {run_admin!r}"
        )
    admin_port = _positive_int(raw, "admin_port", 3001)
    if admin_port > 65535:
        raise DBOSConfigurationError(
            f"DBOSConfig['admin_port'] must be a TCP port, got {admin_port}"
        )
    executor_id = _optional_str(raw, "executor_id") or os.environ.get("DBOS__VMID") or "local"
    allowed_hosts = raw.get("admin_allowed_hosts") or []
    if not isinstance(allowed_hosts, list) or not all(
        isinstance(h, str) and h for h in allowed_hosts
    ):
        raise DBOSConfigurationError(
            f"DBOSConfig['admin_allowed_hosts'] must be a list of host names, got {allowed_hosts!r}"
        )
    admin_host = _optional_str(raw, "admin_host") or "127.0.0.1"
    admin_token = _optional_str(raw, "admin_token") or os.environ.get("DBOS_ADMIN_TOKEN")
    if run_admin and not admin_token and not is_loopback_host(admin_host):
        raise DBOSConfigurationError(
            f"The admin server would listen on {admin_host!r}, which other machines can "
            "reach, without a token: set DBOSConfig['admin_token'] (or DBOS_ADMIN_TOKEN), "
            "or keep admin_host on 127.0.0.1"
        )
    deserialize_values = raw.get("admin_deserialize_values")
    if deserialize_values is not None and not isinstance(deserialize_values, bool):
        raise DBOSConfigurationError(
            f"DBOSConfig['admin_deserialize_values'] must be a bool, got {deserialize_values!r}"
        )

    return ResolvedConfig(
        name=name,
        system_database_url=url,
        application_database_url=app_url,
        sys_db_pool_size=_positive_int(raw, "sys_db_pool_size", 20),
        db_engine_kwargs=dict(engine_kwargs) if engine_kwargs else dict(DEFAULT_ENGINE_KWARGS),
        dbos_system_schema=schema,
        system_database_engine=engine,
        log_level=log_level.upper(),
        # The admin server is opt-in here: a library should not open a port unasked.
        run_admin_server=bool(run_admin) if run_admin is not None else False,
        admin_port=admin_port,
        admin_host=admin_host,
        admin_token=admin_token,
        application_version=_optional_str(raw, "application_version")
        or os.environ.get("DBOS__APPVERSION"),
        executor_id=executor_id,
        serializer=serializer,
        notification_poll_interval=_positive_float(raw, "notification_poll_interval", 0.1),
        database_connect_timeout=_positive_float(raw, "database_connect_timeout", 10.0),
        max_workflow_threads=_positive_int(raw, "max_workflow_threads", 512),
        recovery_interval=_positive_float(raw, "recovery_interval", 5.0),
        raw=raw,
        admin_allowed_hosts=[h.lower() for h in allowed_hosts],
        admin_deserialize_values=bool(deserialize_values),
        **_observability(raw),
    )


def _optional_bool(config: dict[str, Any], key: str) -> bool:
    value = config.get(key)
    if value is not None and not isinstance(value, bool):
        raise DBOSConfigurationError(f"DBOSConfig[{key!r}] must be a bool, got {value!r}")
    return bool(value)


def _endpoints(config: dict[str, Any], key: str) -> list[str]:
    value = config.get(key)
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DBOSConfigurationError(f"DBOSConfig[{key!r}] must be a list of URLs, got {value!r}")
    for url in value:
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise DBOSConfigurationError(
                f"DBOSConfig[{key!r}] has {url!r}, which is not an http(s) URL; OTLP/HTTP "
                "endpoints look like http://collector:4318/v1/traces"
            )
    return list(value)


def _observability(raw: dict[str, Any]) -> dict[str, Any]:
    """The OpenTelemetry keys of the seeds and our ``enable_metrics``, checked."""
    enabled = _optional_bool(raw, "enable_otlp")
    traces = _endpoints(raw, "otlp_traces_endpoints")
    logs = _endpoints(raw, "otlp_logs_endpoints")
    attributes = raw.get("otlp_attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in attributes.items()
    ):
        raise DBOSConfigurationError(
            f"DBOSConfig['otlp_attributes'] must be a dict of str to str, got {attributes!r}"
        )
    if not enabled:
        # Accepting these and then doing nothing would hide a mistake.
        for key, given in (
            ("otlp_traces_endpoints", traces),
            ("otlp_logs_endpoints", logs),
            ("otlp_attributes", attributes),
        ):
            if given:
                raise DBOSConfigurationError(
                    f"DBOSConfig[{key!r}] is set but enable_otlp is not True: set "
                    "'enable_otlp': True to export traces and logs over OTLP"
                )
    return {
        "enable_otlp": enabled,
        "otlp_traces_endpoints": traces,
        "otlp_logs_endpoints": logs,
        "otlp_attributes": dict(attributes),
        "enable_metrics": _optional_bool(raw, "enable_metrics"),
    }


def configure_logger(level: str) -> logging.Logger:
    logger = logging.getLogger("dbos")
    logger.setLevel(getattr(logging, level))
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] (dbos) %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger
