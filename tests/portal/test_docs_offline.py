"""``/docs`` works offline: Swagger UI's files come from the package, never from a CDN (this
machine, like many a user's cluster, has no internet)."""

from __future__ import annotations

import re

from .conftest import shot


def test_docs_page_refers_only_to_files_the_server_serves(portal):
    with portal.http("") as http:
        html = http.get("/docs").text
        refs = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", html)
        urls = [a or b for a, b in refs]
        assert any(u.endswith("swagger-ui-bundle.js") for u in urls), html
        assert not [u for u in urls if re.match(r"^(https?:)?//", u)], urls
        for u in urls:
            assert http.get(u).status_code == 200, u
        redoc = http.get("/redoc").text
        assert "redoc.standalone.js" in redoc and "//cdn" not in redoc and "fonts.googleapis" not in redoc


def test_docs_render_in_a_browser_without_internet(portal, open_page):
    page = open_page()
    outside: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(portal.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(portal.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "gpupool" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector("text=/workloads")
    shot(page, "docs-offline")
    assert outside == [] and page.js_errors == []
