"""The publishing workflow; dbos_django imports this module (``<app>.workflows``) at startup."""

from __future__ import annotations

import dbos_django
from dbos_core import DBOS

from .models import Note


@dbos_django.transaction()  # runs in transaction.atomic(); its checkpoint commits with it
def save_draft(title: str, body: str) -> int:
    note = Note.objects.create(title=title, body=body, author=DBOS.authenticated_user or "")
    return note.pk


@DBOS.step()
def count_words(body: str) -> int:
    return len(body.split())


@dbos_django.transaction()
def publish(note_id: int, words: int) -> None:
    Note.objects.filter(pk=note_id).update(word_count=words, published=True)


@DBOS.workflow()
def publish_note(title: str, body: str) -> dict[str, object]:
    note_id = save_draft(title, body)  # exactly once, even across crashes
    words = count_words(body)
    publish(note_id, words)
    return {"note_id": note_id, "words": words, "author": DBOS.authenticated_user}
