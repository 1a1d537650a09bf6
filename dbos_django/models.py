"""The checkpoint table of Django-ORM transactions, and a placeholder for the admin."""

from __future__ import annotations

from django.db import models


class TransactionOutput(models.Model):
    """One committed ``@DBOS.transaction`` of a workflow, written in its own transaction.

    The unique constraint is what makes a concurrent duplicate run commit only once.
    """

    workflow_uuid = models.TextField()
    function_id = models.IntegerField()
    output = models.TextField(null=True)
    created_at = models.BigIntegerField()

    class Meta:
        db_table = "dbos_transaction_outputs"
        constraints = [
            models.UniqueConstraint(
                fields=["workflow_uuid", "function_id"], name="dbos_transaction_output_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_uuid}#{self.function_id}"


class Workflow(models.Model):
    """No table: gives the admin an entry (and view/change permissions) for workflows,
    which live in the DBOS system database and are read through DBOS.list_workflows."""

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "workflow"
        verbose_name_plural = "workflows"
