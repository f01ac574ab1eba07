"""idom's client files and ours: content types, cache headers, nothing outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authdemo.web.bridge import IDOM_CLIENT_DIR, load_static_dir
from tests.support.live import Live


def client_script() -> str:
    return next(p.name for p in (IDOM_CLIENT_DIR / "assets").iterdir() if p.suffix == ".js")


async def test_the_page_loads_idoms_client_and_our_stylesheet(live: Live) -> None:
    response = await live.get("/")
    assert response.headers["content-type"].startswith("text/html")
    assert f"/_idom/assets/{client_script()}" in response.text
    assert "/_authdemo/static/app.css" in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_hashed_assets_are_cached_forever_with_the_right_type(live: Live) -> None:
    response = await live.get(f"/_idom/assets/{client_script()}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_unhashed_files_are_revalidated(live: Live) -> None:
    response = await live.get("/_authdemo/static/app.css")
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/_idom/assets/../index.html",
        "/_idom/assets/..%2f..%2f..%2fconfig.py",
        "/_idom/assets/%2e%2e/%2e%2e/__init__.py",
        "/_idom/assets/%252e%252e%252f__init__.py",
        "/_idom/assets/..%2F..%2Fbackend%2Fsanic.py",
        "/_idom/assets/%2Fetc%2Fpasswd",
        "/_idom/assets/%2e%2e%2f%2e%2e%2fconfig.py",
        "/_idom/assets-secret/secret.js",
        "/_idom/assetsx/index.a2011453.js",
        "/_idom/assets/..%5c..%5cconfig.py",
        "/_idom/assets/nothing.js",
        "/_authdemo/static/..%2f..%2fcli.py",
        "/_idom/modules/anything.js",
        "/_idom/stream-not",
        "/_auth/",
    ],
)
async def test_traversal_and_unknown_paths_are_404(live: Live, path: str) -> None:
    response = await live.get(path)
    assert response.status_code == 404
    assert "set-cookie" not in response.headers


def test_symlinks_and_sibling_folders_are_never_served(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "ok.js").write_text("ok")
    sibling = tmp_path / "assets-secret"
    sibling.mkdir()
    (sibling / "secret.js").write_text("secret")
    os.symlink(sibling / "secret.js", assets / "link.js")
    (assets / "sub").mkdir()
    (assets / "sub" / "nested.js").write_text("nested")
    assert set(load_static_dir(assets)) == {"ok.js"}
