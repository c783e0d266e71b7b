"""The web console: the single-page app built from ``console/`` (Vite) into
``deltaomega/console/static``, which ships in the package.

Open to anyone: the shell holds no data; every call it makes carries the person's token
and meets the same guard as any other client. Hashed asset names are cached for a year,
the shell and the service worker never (a new build takes effect at the next load)."""

from __future__ import annotations

import functools
import gzip
import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from deltaomega.api.auth.access import public
from deltaomega.api.problems import problem, problem_responses

STATIC = Path(__file__).resolve().parents[2] / "console" / "static"
_IMMUTABLE = "public, max-age=31536000, immutable"
_FRESH = "no-cache"
mimetypes.add_type("application/manifest+json", ".webmanifest")

router = APIRouter(tags=["console"])


_COMPRESSED = (".js", ".css", ".html", ".svg", ".json", ".webmanifest")


@functools.lru_cache(maxsize=64)
def _gzipped(path: Path, mtime_ns: int) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)


def _file(path: Path, request: Request) -> Response:
    cache = _IMMUTABLE if path.parent.name == "assets" else _FRESH
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if path.name == "sw.js":
        headers["Service-Worker-Allowed"] = "/console/"
    if path.suffix in _COMPRESSED and "gzip" in request.headers.get("accept-encoding", ""):
        body = _gzipped(path, path.stat().st_mtime_ns)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(body, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return FileResponse(path, headers=headers)


_SERVED = (
    "text/html",
    "text/javascript",
    "text/css",
    "image/svg+xml",
    "application/manifest+json",
)


@router.get(
    "/console/{path:path}",
    summary="The web console (any path that is not a file is the app's own page)",
    response_class=Response,
    responses={
        200: {
            "description": "The app's page, or one of its files",
            "content": {media: {} for media in _SERVED},
        },
        **problem_responses(404, 503),
    },
    **public(),
)
async def console(path: str, request: Request) -> Response:
    index = STATIC / "index.html"
    if not index.is_file():
        return problem(
            503,
            "Console not built",
            "the console's build is missing from this installation: run `make console`",
        )
    try:
        wanted = (STATIC / path).resolve()
        found = bool(path) and wanted.is_relative_to(STATIC) and wanted.is_file()
    except (OSError, ValueError):  # a name no file can have (a NUL byte, too long)
        found = False
    if found:
        return _file(wanted, request)
    if path.startswith("assets/") or Path(path).suffix:
        return problem(404, "Not found", f"no file {path!r} in the console")
    return _file(index, request)
