from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # The site's own login, for users who are not staff.
    path("accounts/login/", LoginView.as_view()),
    path("dbos/", include("dbos_django.dashboard")),
]
