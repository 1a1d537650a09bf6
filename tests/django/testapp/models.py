from __future__ import annotations

from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=200)
    created_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return self.title


class Ledger(models.Model):
    """Rows in the ``other`` database (transactions with using="other")."""

    entry = models.CharField(max_length=200)
