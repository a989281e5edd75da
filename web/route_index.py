"""The app's routes, tried in their order, but only those whose fixed start fits the path.

Starlette finds a request's route by trying every route's regular expression in turn (about a
microsecond each). With 120-odd routes, a path near the end of the table paid for every route
before it, so an endpoint's speed depended on where it was registered: the cart's checkout,
20th, spent 10 % of its time in routing against the no-op's 1 % (py-spy, docs/benchmarks.md).
``RouteIndex`` is one route holding the others: it looks up, by the path's first two segments,
the routes that could match (those whose fixed leading segments agree) and tries only those, in
the table's order, so which route wins, 405s and slash redirects are as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

Head = tuple[str, ...]
CHOSEN = "livecart.route"  # the child scope names the route that matched, for handle()
DEPTH = 2  # leading segments indexed


def head(route: BaseRoute) -> Head:
    """A route's fixed leading segments (up to ``DEPTH``): ``/api/deals/{id}/reserve`` has
    ``("api", "deals")``, ``/live/{id}`` has ``("live",)``, ``/`` has ``("",)``."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):  # a route kind with no path: always tried
        return ()
    fixed: list[str] = []
    for segment in path.split("/")[1 : 1 + DEPTH]:
        if "{" in segment:
            break
        fixed.append(segment)
    return tuple(fixed)


class RouteIndex(BaseRoute):
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = list(routes)
        self._heads = [head(route) for route in self.routes]
        self._known = set(self._heads)
        # Keyed by which indexed heads the path starts with, so there are at most as many
        # entries as heads, whatever paths clients send.
        self._cache: dict[tuple[Head | None, Head | None], list[BaseRoute]] = {}

    def candidates(self, scope: Scope) -> list[BaseRoute]:
        if scope.get("root_path"):  # mounted below a prefix: no index, every route
            return self.routes
        parts = tuple(scope["path"].split("/", DEPTH + 1)[1 : 1 + DEPTH])
        one, two = parts[:1], parts[:2]
        key = (one if one in self._known else None, two if two in self._known else None)
        found = self._cache.get(key)
        if found is None:
            found = [
                route
                for route, fixed in zip(self.routes, self._heads, strict=True)
                if fixed in ((), one, two)
            ]
            self._cache[key] = found
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.candidates(scope):
            match, child = route.matches(scope)
            if match is Match.FULL:
                return match, {**child, CHOSEN: route}
            if match is Match.PARTIAL and partial is None:
                partial = (route, child)
        if partial is not None:
            route, child = partial
            return Match.PARTIAL, {**child, CHOSEN: route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope[CHOSEN]
        scope["route"] = route
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)
