"""The route index (web/route_index.py) picks the route Starlette's own in-order scan would, for
every route of the app, with every method, with and without a trailing slash."""

from __future__ import annotations

import re
import secrets

import pytest
from starlette.routing import BaseRoute, Match

from web.app import create_app
from web.route_index import CHOSEN, RouteIndex
from web.settings import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def index() -> RouteIndex:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LIVECART_SECRET_KEY", secrets.token_urlsafe(32))
        env.setenv("LIVECART_BENCH_ROUTES", "1")  # the bench routes too: they come first
        app = create_app(Settings())
    (only,) = app.router.routes
    assert isinstance(only, RouteIndex)
    return only


def scan(routes: list[BaseRoute], scope: dict[str, object]) -> tuple[Match, BaseRoute | None]:
    """What Starlette's router does with a plain list: the first full match, else the first
    partial one (a 405)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return match, route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def example_paths(index: RouteIndex) -> list[str]:
    """A concrete path for each route (ids 7, words "x"), each also with a trailing slash, and
    paths no route has."""
    paths = ["/", "/nope", "/api", "/api/", "/api/nope/7", "/static/css/app.css", "//", ""]
    for route in index.routes:
        template = getattr(route, "path", "")
        concrete = re.sub(r"\{[^}:]+:id\}", "7", template)
        concrete = re.sub(r"\{[^}]+\}", "x", concrete)
        paths += [concrete, concrete + "/", concrete + "/extra"]
    return paths


def test_every_path_and_method_finds_the_route_the_ordered_scan_finds(index: RouteIndex) -> None:
    checked = 0
    for path in example_paths(index):
        for kind, methods in (("http", METHODS), ("websocket", ("GET",))):
            for method in methods:
                scope = {"type": kind, "path": path, "method": method, "root_path": ""}
                expected = scan(index.routes, scope)
                match, child = index.matches(scope)
                assert (match, child.get(CHOSEN)) == expected, (kind, method, path)
                checked += 1
    assert checked > 2000  # every route, several ways


def test_paths_clients_make_up_do_not_grow_the_index(index: RouteIndex) -> None:
    before = len(index._cache)
    for n in range(5000):
        for path in (f"/api/x{n}/y{n}", f"/x{n}", f"/live/{n}/x{n}", f"/{n}/api/cart"):
            scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
            index.matches(scope)
    assert len(index._cache) <= before + 4  # one entry per kind of path, not per path
    # Keyed by which known heads a path starts with: (none or a one-segment head, none or a
    # two-segment head).
    assert len(index._cache) <= 1 + 2 * len(index._known)


def test_the_hot_paths_are_tried_against_a_handful_of_routes(index: RouteIndex) -> None:
    for path in ("/api/deals/7/reserve", "/api/cart/checkout", "/api/holds/h1/checkout"):
        tried = index.candidates({"type": "http", "path": path, "root_path": ""})
        assert 0 < len(tried) <= 10, (path, len(tried), len(index.routes))
