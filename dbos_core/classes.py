"""DBOS classes: instance workflows found again, at recovery, by their ``config_name``."""

from __future__ import annotations

from .error import DBOSException
from .runtime.registry import registry


class DBOSConfiguredInstance:
    """Base of classes whose instances run workflows; ``config_name`` names the instance."""

    config_name: str

    def __init__(self, config_name: str) -> None:
        if not isinstance(config_name, str) or not config_name:
            raise DBOSException(
                f"{type(self).__name__} needs a non-empty config_name to be recoverable, "
                f"got {config_name!r}"
            )
        self.config_name = config_name
        registry.register_instance(class_registration_name(type(self)), config_name, self)


def class_registration_name(cls: type) -> str:
    return str(getattr(cls, "__dbos_class_name__", None) or cls.__qualname__)
