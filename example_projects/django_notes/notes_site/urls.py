from django.contrib import admin
from django.urls import path

from dbos_django.metrics import metrics_view
from example_projects.django_notes.notes import views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Prometheus metrics (with NOTES_METRICS set), for logged-in staff users only.
    path("metrics/", metrics_view),
    path("notes/", views.create_note),
    path("notes/<str:workflow_id>/", views.note_status),
]
