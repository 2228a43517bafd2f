"""``python -m sessionshare demo``: an IdP and four remote sites on this machine, one login.

Not part of the library a deployment imports: the demo runs the apps of
``examples/`` (a source checkout's) with the ``demo`` extra's frameworks and
servers, over an in-process store, on plain http. Three modules:

- :mod:`~sessionshare.demo.app`: the sites, their servers and the command
  (``run_demo``), the access log that never shows a token;
- :mod:`~sessionshare.demo.panel`: the box on every page (the site, the user,
  the shared session, the sites that joined it);
- :mod:`~sessionshare.demo.timeline`: each hand-off hop by hop, built from
  public surfaces alone (request lines, statuses and the library's events).

    python -m pip install -e '.[demo]' && python -m sessionshare demo
"""

from __future__ import annotations

from .app import ASGI_SITES as ASGI_SITES
from .app import DEFAULT_PORT as DEFAULT_PORT
from .app import SITES as SITES
from .app import AccessLog as AccessLog
from .app import Servers as Servers
from .app import demo_apps as demo_apps
from .app import find_examples as find_examples
from .app import listen as listen
from .app import load_example as load_example
from .app import run_demo as run_demo
from .app import site_urls as site_urls

__all__ = [
    "ASGI_SITES", "DEFAULT_PORT", "SITES", "AccessLog", "Servers", "demo_apps", "find_examples",
    "listen", "load_example", "run_demo", "site_urls",
]
