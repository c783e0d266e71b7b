"""How the API serves the console's build: the app's page for its own paths, hashed assets
cached for good and compressed, nothing outside the build, and a clear 503 when it was
never built."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deltaomega.api.routes import console


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><div id=root></div>")
    (static / "assets" / "index-abc123.js").write_text("console.log('app');" * 50)
    (static / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (tmp_path / "secret.txt").write_text("not for the web")
    monkeypatch.setattr(console, "STATIC", static)
    return static


def _client() -> TestClient:
    app = FastAPI()
    app.include_router(console.router)
    return TestClient(app)


def test_the_app_page_answers_for_its_own_paths(build: Path) -> None:
    client = _client()
    for path in ("/console/", "/console/voices/v1", "/console/alerts"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.text == "<!doctype html><div id=root></div>"
        assert response.headers["cache-control"] == "no-cache"
    redirected = client.get("/console", follow_redirects=False)
    assert redirected.status_code == 307 and redirected.headers["location"].endswith("/console/")


def test_assets_are_cached_for_good_and_compressed(build: Path) -> None:
    client = _client()
    plain = client.get("/console/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.content == (build / "assets" / "index-abc123.js").read_bytes()
    raw = client.get("/console/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["content-type"].startswith("text/javascript")
    # httpx decoded it; the bytes on the wire were the gzip of the file
    assert raw.content == plain.content
    assert int(raw.headers["content-length"]) == len(
        gzip.compress(plain.content, compresslevel=9, mtime=0)
    )
    worker = client.get("/console/sw.js")
    assert worker.headers["service-worker-allowed"] == "/console/"
    assert worker.headers["cache-control"] == "no-cache"


def test_nothing_outside_the_build_and_no_made_up_files(build: Path) -> None:
    client = _client()
    for path in ("/console/assets/missing.js", "/console/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    traversal = client.get("/console/..%2Fsecret.txt")
    assert traversal.status_code == 404
    assert "not for the web" not in traversal.text
    assert client.get("/console/a%00b").status_code == 200  # the app's page, not a 500


def test_a_missing_build_is_a_clear_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "STATIC", tmp_path / "nothing")
    response = _client().get("/console/")
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "the console's build is missing from this installation: run `make console`"
    )
