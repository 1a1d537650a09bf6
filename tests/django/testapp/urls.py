from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dbos/", include("dbos_django.dashboard")),
    path("notes/", views.start_note),
    path("notes/inline/", views.call_note_inline),
    path("notes/async/", views.start_note_async),
    path("notes/on-commit/", views.note_on_commit),
    path("gated/", views.gated),
    path("unreachable/", views.unreachable),
]
