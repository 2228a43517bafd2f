"""The identity provider: a Flask app with a login form, behind IdpAuthMiddleware.

The middleware handles the hand-off; this app only signs people in by
setting ``session["user"]``. The form posts back to its own URL, so a
sign-in a remote asked for (``/login?callback=...&state=...``) goes straight
back to that remote. ``flask.session`` is the shared session.

The form names the site that asked for the sign-in -- only after checking
its callback against the same allow-list the middleware uses, so a crafted
link cannot make this page vouch for a site of its choosing.

    app = create_app(store=MemoryStore(), key=SyncKey.generate(), cookie_secure=False,
                     app_url="http://idp.localhost:8000",
                     known_remote_hosts=["http://shop.localhost:8001"])
    # or, configured by SESSIONSHARE_* variables: gunicorn 'idp_flask:create_app()'
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, flash, redirect, render_template_string, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from sessionshare import AllowList, ConfigurationError, IdpAuthMiddleware
from sessionshare.contrib.flask import init_app

# The demo's made-up users, listed on the form. A real app keeps only the hashes,
# in its user database, and shows nobody's password.
DEMO_USERS = {"alice": "wonderland", "bob": "builder"}
USERS = {name: generate_password_hash(password) for name, password in DEMO_USERS.items()}
_NOBODY = generate_password_hash(secrets.token_urlsafe())  # same work for unknown names

PAGE = """<!doctype html><meta charset=utf-8><title>Sign in</title>
<h1>Identity provider</h1>
{% for message in get_flashed_messages() %}<p class=flash>{{ message }}</p>{% endfor %}
{% if session.user %}
  <p>Signed in as <b id=user>{{ session.user }}</b>.</p>
  <form method=post action="/_sessionshare/logout"><button id=logout>Sign out</button></form>
{% else %}
  {% if asking %}<p><b id=asking-site>{{ asking }}</b> asks you to sign in.</p>{% endif %}
  <form method=post>{# no action: the query with the remote's callback stays #}
    <input type=hidden name=csrf value="{{ csrf }}">
    <label>User <input name=username id=username autofocus></label>
    <label>Password <input name=password id=password type=password></label>
    <label><input type=checkbox name=remember id=remember value=1> Remember me (30 days)</label>
    <button id=sign-in>Sign in</button>
  </form>
  <p id=demo-users>Demo users:
  {% for name, password in users.items() %}<code>{{ name }}</code> / <code>{{ password }}</code>
  {%- if not loop.last %}, {% endif %}{% endfor %}</p>
{% endif %}"""


def home() -> Any:
    if not session.get("user"):
        return redirect("/login")  # the form lives there
    return render_template_string(PAGE)


def login() -> Any:
    if request.method == "POST":
        if not hmac.compare_digest(request.form.get("csrf", ""), session.get("csrf", "-")):
            return "This form expired; reload the page and sign in again.", 400  # login CSRF
        name = request.form.get("username", "")
        if check_password_hash(USERS.get(name, _NOBODY), request.form.get("password", "")):
            session["user"] = name  # the middleware rotates the id and hands off
            if request.form.get("remember"):
                session.remember(days=30)  # every site's cookie outlives a browser restart
            if asking_site() is None:
                # Signed in here, not for a remote: the browser goes back to the remote
                # that asked, which never shows this page's message (it would sit in the
                # shared session until the next visit here).
                flash(f"Welcome, {name}.")
            return redirect("/")
        flash("Wrong user name or password.")
    elif session.get("user"):
        return redirect("/")
    csrf = session.setdefault("csrf", secrets.token_urlsafe(16))
    return render_template_string(PAGE, csrf=csrf, asking=asking_site(), users=DEMO_USERS)


def asking_site() -> str | None:
    """The origin of the remote that sent the browser here, if its callback is allowed."""
    remotes: AllowList | None = current_app.config["REMOTES"]
    callback = request.args.get("callback")
    if remotes is None or callback is None or not remotes.is_allowed_callback(callback):
        return None
    return remotes.check_callback(callback).origin


def remotes_of(options: dict[str, Any]) -> AllowList | None:
    """The allow-list the middleware gets (from ``options``, else the environment)."""
    hosts = options.get("known_remote_hosts", os.environ.get("SESSIONSHARE_KNOWN_REMOTE_HOSTS"))
    path = options.get("callback_path", os.environ.get("SESSIONSHARE_CALLBACK_PATH"))
    try:
        if isinstance(hosts, AllowList) or hosts is None:
            return hosts
        return AllowList(hosts, **({"callback_path": path} if path else {}))
    except ConfigurationError:
        return None  # the middleware, built from the same setting, says what is wrong


def create_app(*, wrap_app: Callable[[Any], Any] | None = None, **options: Any) -> Flask:
    """The IdP; ``options`` go to IdpAuthMiddleware (none: SESSIONSHARE_* variables).

    ``wrap_app`` wraps Flask's own WSGI app inside the middleware, where the
    shared session is visible (the demo adds its panel this way).
    """
    app = Flask(__name__)
    app.config["REMOTES"] = remotes_of(options)
    app.add_url_rule("/", view_func=home)
    app.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    inner = wrap_app(app.wsgi_app) if wrap_app else app.wsgi_app
    if options:
        app.wsgi_app = IdpAuthMiddleware(inner, **options)
    else:
        app.wsgi_app = IdpAuthMiddleware.from_env(inner)
    init_app(app)
    return app
