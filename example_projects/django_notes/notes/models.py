from __future__ import annotations

from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
    author = models.CharField(max_length=150, blank=True, default="")
    word_count = models.IntegerField(null=True)
    published = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.title
