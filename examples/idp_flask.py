"""The identity provider: a Flask app with a login form, behind IdpAuthMiddleware.

The middleware handles the hand-off; this app only signs people in by
setting ``session["user"]``. The form posts back to its own URL, so a
sign-in a remote asked for (``/login?callback=...&state=...``) goes straight
back to that remote. ``flask.session`` is the shared session.

    app = create_app(store=MemoryStore(), key=SyncKey.generate(), cookie_secure=False,
                     app_url="http://idp.localhost:8000",
                     known_remote_hosts=["http://shop.localhost:8001"])
    # or, configured by SESSIONSHARE_* variables: gunicorn 'idp_flask:create_app()'
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, flash, redirect, render_template_string, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from sessionshare import IdpAuthMiddleware
from sessionshare.contrib.flask import init_app

# A real app keeps only these hashes, in its user database.
USERS = {"alice": generate_password_hash("wonderland"), "bob": generate_password_hash("builder")}
_NOBODY = generate_password_hash(secrets.token_urlsafe())  # same work for unknown names

PAGE = """<!doctype html><meta charset=utf-8><title>Sign in</title>
<h1>Identity provider</h1>
{% for message in get_flashed_messages() %}<p class=flash>{{ message }}</p>{% endfor %}
{% if session.user %}
  <p>Signed in as <b id=user>{{ session.user }}</b>.</p>
  <form method=post action="/_sessionshare/logout"><button id=logout>Sign out</button></form>
{% else %}
  <form method=post>{# no action: the query with the remote's callback stays #}
    <input type=hidden name=csrf value="{{ csrf }}">
    <label>User <input name=username id=username autofocus></label>
    <label>Password <input name=password id=password type=password></label>
    <button id=sign-in>Sign in</button>
  </form>
{% endif %}"""


def login() -> Any:
    if request.method == "POST":
        if not hmac.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-")):
            return "This form expired; reload the page and sign in again.", 400  # login CSRF
        name = request.form.get("username", "")
        if check_password_hash(USERS.get(name, _NOBODY), request.form.get("password", "")):
            session["user"] = name  # the middleware rotates the id and hands off
            flash(f"Welcome, {name}.")
            return redirect("/")
        flash("Wrong user name or password.")
    elif session.get("user"):
        return redirect("/")
    csrf = session.setdefault("csrf", secrets.token_urlsafe(16))
    return render_template_string(PAGE, csrf=csrf)


def create_app(**options: Any) -> Flask:
    """The IdP; ``options`` go to IdpAuthMiddleware (none: SESSIONSHARE_* variables)."""
    app = Flask(__name__)
    app.add_url_rule("/", view_func=lambda: render_template_string(PAGE))
    app.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    if options:
        app.wsgi_app = IdpAuthMiddleware(app.wsgi_app, **options)
    else:
        app.wsgi_app = IdpAuthMiddleware.from_env(app.wsgi_app)
    init_app(app)
    return app
