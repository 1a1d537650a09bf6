"""``DBOS.logger`` records as OTLP log records, with the trace and span of their workflow.

A plain ``logging.Handler`` on the ``dbos`` logger: each record becomes an
OpenTelemetry log record carrying the current context, so a line logged inside a
step has that step's span ID and its workflow's trace ID. The batch processor
behind it exports from its own thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry._logs import Logger, LogRecord, SeverityNumber

from ..runtime import context as ctx

_SEVERITY = (
    (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.WARNING, SeverityNumber.WARN, "WARN"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
)


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    for level, number, text in _SEVERITY:
        if levelno >= level:
            return number, text
    return SeverityNumber.TRACE, "TRACE"


class OTLPLogHandler(logging.Handler):
    def __init__(self, otel_logger: Logger, attributes: dict[str, Any]) -> None:
        super().__init__()
        self._logger = otel_logger
        self._attributes = dict(attributes)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attributes: dict[str, Any] = {
                **self._attributes,
                "code.function.name": record.funcName,
                "code.file.path": record.pathname,
                "code.line.number": record.lineno,
            }
            state = ctx.current_workflow.get()
            if state is not None:
                attributes["dbos.workflow.id"] = state.workflow_id
            step = ctx.current_step.get()
            if step is not None and step.function_id is not None:
                attributes["dbos.step.function_id"] = step.function_id
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                attributes["exception.type"] = type(error).__name__
                attributes["exception.message"] = str(error)
            number, text = _severity(record.levelno)
            self._logger.emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    context=otel_context.get_current(),
                    severity_number=number,
                    severity_text=text,
                    body=record.getMessage(),
                    attributes=attributes,
                )
            )
        except Exception:
            self.handleError(record)
