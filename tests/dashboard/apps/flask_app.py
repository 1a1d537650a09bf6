"""A Flask app with Flask-Login: the dashboard blueprint at /dbos, for user "staff" only.

``python -m tests.dashboard.apps.flask_app`` with DASH_DB_URL, DASH_PORT and
DASH_PASSWORD; served by Werkzeug with threads (live pages hold one each).
"""

from __future__ import annotations

import os

from flask import Flask, redirect, request
from flask_login import LoginManager, UserMixin, current_user, login_user
from werkzeug.serving import run_simple

from dbos_flask import DBOSFlask, dashboard_blueprint

from . import workflows  # noqa: F401  (registers the workflows)

USERS = ("staff", "customer")
LOGIN_FORM = """<!doctype html><html lang="en"><head><title>Sign in</title></head><body><main>
<form method="post"><label for="username">User</label><input id="username" name="username">
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></main></body></html>"""


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["DASH_PASSWORD"] + "-flask-secret"
    app.config["DBOS_CONFIG"] = {
        "name": "dash-flask",
        "system_database_url": os.environ["DASH_DB_URL"],
        "application_version": "dash-test",
    }
    DBOSFlask(app)
    logins = LoginManager(app)
    logins.login_view = "login"
    logins.user_loader(lambda name: User(name) if name in USERS else None)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> object:
        if request.method == "POST":
            name = request.form.get("username", "")
            if name in USERS and request.form.get("password") == os.environ["DASH_PASSWORD"]:
                login_user(User(name))
                target = request.args.get("next", "")
                return redirect(target if target.startswith("/dbos/") else "/dbos/")
        return LOGIN_FORM

    app.register_blueprint(
        dashboard_blueprint(
            authorize=lambda: current_user.is_authenticated and current_user.id == "staff"
        ),
        url_prefix="/dbos",
    )
    return app


if __name__ == "__main__":
    application = create_app()
    with application.app_context():
        application.extensions["dbos"].launch()
    run_simple("127.0.0.1", int(os.environ["DASH_PORT"]), application, threaded=True)
