"""Run as a child process by the transaction crash test.

mode "crash": run a workflow whose transaction commits, then SIGKILL this process
right after the commit (before the step reaches the system database).
mode "recover": launch on the same databases; recovery finishes the workflow.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import sqlalchemy as sa

from dbos_core import DBOS, SetWorkflowID
from dbos_core.integration import set_transaction_backend_factory
from dbos_core.transactions.sqlalchemy_backend import SQLAlchemyTransactionBackend

sys_url, app_url, mode = sys.argv[1:4]

ledger = sa.Table(
    "ledger",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("note", sa.Text, nullable=False),
)


@DBOS.transaction()
def record_payment(note: str) -> int:
    DBOS.sql_session.execute(ledger.insert().values(note=note))
    return int(DBOS.sql_session.execute(sa.select(sa.func.count()).select_from(ledger)).scalar())


@DBOS.workflow()
def pay(note: str) -> str:
    count = record_payment(note)
    return f"{note}:{count}"


class KillRightAfterCommit(SQLAlchemyTransactionBackend):
    def run(self, body: Any, checkpoint: Any, isolation_level: str) -> Any:
        result = super().run(body, checkpoint, isolation_level)
        os.kill(os.getpid(), signal.SIGKILL)
        return result


def main() -> None:
    engine = sa.create_engine(app_url)
    ledger.metadata.create_all(engine)
    engine.dispose()
    if mode == "crash":
        set_transaction_backend_factory(
            lambda rt: KillRightAfterCommit(rt.config.application_database_url or "")
        )
    DBOS(
        config={
            "name": "txn-crash",
            "system_database_url": sys_url,
            "application_database_url": app_url,
            "notification_poll_interval": 0.05,
        }
    )
    DBOS.launch()
    if mode == "crash":
        with SetWorkflowID("pay-1"):
            pay("rent")
        print("not killed")
        return
    result = DBOS.retrieve_workflow("pay-1").get_result(timeout=60)
    print(json.dumps({"result": result}))
    DBOS.destroy()


main()
