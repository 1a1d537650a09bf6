"""Put the request id (and workflow id) on log records, for formats like ``%(request_id)s``."""

from __future__ import annotations

import logging

from dbos_core import DBOS


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` and ``workflow_id`` ("-" when there is none) to every record.

    Inside a workflow the request id is the one stored with it, so it survives recovery.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = DBOS.request_id or "-"
        record.workflow_id = DBOS.workflow_id or "-"
        return True
