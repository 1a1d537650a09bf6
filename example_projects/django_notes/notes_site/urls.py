from django.contrib import admin
from django.urls import path

from example_projects.django_notes.notes import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("notes/", views.create_note),
    path("notes/<str:workflow_id>/", views.note_status),
]
