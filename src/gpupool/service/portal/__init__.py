"""The web portal: server-rendered pages (Jinja2), a little vanilla JavaScript, CSS; no build step.

``router`` serves the pages at ``/`` and ``/portal/...``, their static assets, and two JSON views
the API has no equivalent for (``/portal/api/me``, ``/portal/api/nodes``). See docs/portal.md.
"""

from gpupool.service.portal.router import router

__all__ = ["router"]
