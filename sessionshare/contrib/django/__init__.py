"""Django adapter: ``request.session`` is the shared session, ``request.user`` the IdP's user.

- :mod:`~sessionshare.contrib.django.wsgi` -- ``get_wsgi_application()``: Django's
  handler inside the remote or IdP middleware, configured by the
  ``SESSIONSHARE`` setting (the middlewares' option names);
- :mod:`~sessionshare.contrib.django.middleware` -- ``SessionMiddleware``, in
  place of Django's, and :mod:`~sessionshare.contrib.django.session`, the
  ``SESSION_ENGINE`` it serves: the shared session behind Django's session API;
- Django's own ``PersistentRemoteUserMiddleware`` and ``RemoteUserBackend``
  make ``request.user`` the user the middleware publishes as ``REMOTE_USER``;
- :mod:`~sessionshare.contrib.django.views` -- ``sign_in`` at ``LOGIN_URL``, so
  ``login_required`` leads into the hand-off;
- :mod:`~sessionshare.contrib.django.checks` -- ``manage.py check`` names
  whatever is missing, by id.

docs/getting-started.md has a remote's settings in full. An IdP built on
Django names ``known_remote_hosts`` instead of ``idp_url`` and keeps its
``LoginView`` at the middleware's ``login_path``: Django's ``auth.login()``
sets the shared user, and the middleware hands off.
"""
