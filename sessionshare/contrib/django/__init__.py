"""Django adapter: ``request.session`` is the shared session, ``request.user`` the IdP's user.

Four pieces, each in its module:

- :mod:`~sessionshare.contrib.django.wsgi` -- ``get_wsgi_application()``: Django's
  handler inside the remote or IdP middleware, configured by the
  ``SESSIONSHARE`` setting (the middlewares' option names);
- :mod:`~sessionshare.contrib.django.middleware` -- ``SessionMiddleware``, in
  place of Django's, and :mod:`~sessionshare.contrib.django.session`, the
  ``SESSION_ENGINE`` it serves: the shared session behind Django's session API;
- Django's own ``PersistentRemoteUserMiddleware`` and ``RemoteUserBackend``
  make ``request.user`` the user the middleware publishes as ``REMOTE_USER``
  (the backend creates the local ``User`` on first sight; subclass it with
  ``create_unknown_user = False`` to admit only users you created);
- :mod:`~sessionshare.contrib.django.views` -- ``sign_in`` at ``LOGIN_URL``, so
  ``login_required`` leads into the hand-off.

A remote's settings, in short (:mod:`~sessionshare.contrib.django.checks`:
``manage.py check`` names whatever is missing, by id)::

    SESSIONSHARE = {"store": "redis://127.0.0.1:6379/0", "app_url": "https://forum.example",
                    "idp_url": "https://id.example/login", "protect": False}
    INSTALLED_APPS = [..., "sessionshare.contrib.django"]
    SESSION_ENGINE = "sessionshare.contrib.django.session"
    MIDDLEWARE = [..., "sessionshare.contrib.django.middleware.SessionMiddleware", ...,
                  "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "django.contrib.auth.middleware.PersistentRemoteUserMiddleware", ...]
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]

An IdP built on Django names ``known_remote_hosts`` instead of ``idp_url``
and keeps its ``LoginView`` at the middleware's ``login_path``: Django's
``auth.login()`` sets the shared user, and the middleware hands off.
"""
