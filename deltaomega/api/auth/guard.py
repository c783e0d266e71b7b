"""The guard: every request to a route is authenticated, authorised by the route's declared
role and counted against the caller's rate limit before anything else sees it.

A plain ASGI middleware outside the read cache, so a cached answer is never served to a
caller who may not have it and every request counts against its budget. A route that
declares no access is refused (fail closed); a path that matches no route passes on to
the 404.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI
from fastapi.routing import RouteContext
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deltaomega.api.auth.access import Access, access_of, guarded_routes
from deltaomega.api.problems import problem
from deltaomega.errors import ServiceUnavailableError
from deltaomega.metrics import AUTH_DENIED
from deltaomega.security.audit import AuditTrail, Outcome
from deltaomega.security.gatekeeper import (
    ForbiddenError,
    Gatekeeper,
    RateLimitedError,
    UnauthenticatedError,
)
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(given: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    if given is not None and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _with_request_id(send: Send, request_id: str) -> Send:
    """Every answer names its request (audit rows carry the same id)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"x-request-id", request_id.encode()),
            ]
        await send(message)

    return sending


_UNDECLARED = Access(Role.ADMIN)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        api: FastAPI,
        gatekeeper: Gatekeeper,
        audit: AuditTrail,
    ) -> None:
        self.app = app
        self.api = api
        self.gatekeeper = gatekeeper
        self.audit = audit
        self._routes: list[RouteContext] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = _request_id(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        send = _with_request_id(send, request_id)
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # metrics label refused requests by their route too
        access = access_of(route)
        if access is None:
            log.error("route %s declares no access; refusing it", route.path)
            access = _UNDECLARED
        needed = access.role
        if needed is None:
            if not self._protected(access):
                await self.app(scope, receive, send)
                return
            needed = Role.VIEWER
        principal: Principal | None = None
        client = (scope.get("client") or ("unknown", 0))[0]
        try:
            await self.gatekeeper.before_authentication(client)
            principal = await self.gatekeeper.authenticate(
                headers.get("authorization"), headers.get("x-api-key")
            )
            principal = self.gatekeeper.admit(principal, needed)
            if access.route_class is not None:
                await self.gatekeeper.spend(principal, access.route_class, client)
        except UnauthenticatedError as exc:
            await self.gatekeeper.failed_authentication(client)
            response = problem(401, "Unauthorized", str(exc))
            response.headers["WWW-Authenticate"] = exc.challenge
            await self._deny(scope, receive, send, response, None, str(exc))
            return
        except ForbiddenError as exc:
            forbidden = problem(403, "Forbidden", str(exc))
            await self._deny(scope, receive, send, forbidden, exc.principal, str(exc))
            return
        except RateLimitedError as exc:
            response = problem(429, "Too many requests", str(exc))
            response.headers["Retry-After"] = str(exc.verdict.retry_after)
            response.headers["RateLimit-Limit"] = str(exc.verdict.limit)
            response.headers["RateLimit-Remaining"] = "0"
            await self._deny(scope, receive, send, response, principal, str(exc))
            return
        except ServiceUnavailableError as exc:
            response = problem(503, "Service unavailable", str(exc), service=exc.service)
            response.headers["Retry-After"] = str(exc.retry_after)
            await response(scope, receive, send)
            return
        scope["state"]["principal"] = principal
        await self.app(scope, receive, send)

    async def _deny(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: object,
        principal: Principal | None,
        reason: str,
    ) -> None:
        status = int(getattr(response, "status_code", 0))
        AUTH_DENIED.labels(str(status)).inc()
        route = scope.get("route")
        self.audit.record(
            f"{scope.get('method', 'WEBSOCKET')} {getattr(route, 'path', scope['path'])}",
            Outcome.DENIED,
            principal=principal,
            target=scope["path"],
            request_id=scope["state"]["request_id"],
            client=(scope.get("client") or ("", 0))[0],
            status=status,
            detail=reason,
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        await response(scope, receive, send)  # type: ignore[operator]

    def _protected(self, access: Access) -> bool:
        """A public route whose setting (``DELTAOMEGA_METRICS_AUTH``) asks for a viewer."""
        if access.protected_by is None:
            return False
        name = access.protected_by.removeprefix("DELTAOMEGA_").lower()
        return bool(getattr(self.gatekeeper.settings, name))

    def _route(self, scope: Scope) -> RouteContext | None:
        if self._routes is None:
            self._routes = guarded_routes(self.api)
        for route in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route
        return None
