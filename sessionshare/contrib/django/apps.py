"""The Django app of sessionshare: list it in ``INSTALLED_APPS`` and ``manage.py check``
runs sessionshare's system checks (:mod:`sessionshare.contrib.django.checks`).

    INSTALLED_APPS = [..., "sessionshare.contrib.django"]

It has no models, templates or URLs.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core.checks import register

from .checks import TAG, check_project

__all__ = ["SessionshareConfig"]


class SessionshareConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """Registers the checks when Django starts."""

    name = "sessionshare.contrib.django"
    label = "sessionshare"
    verbose_name = "sessionshare"

    def ready(self) -> None:
        register(check_project, TAG)
