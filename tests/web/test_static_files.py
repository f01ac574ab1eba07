"""The UI library's client files (IDOM's or ReactPy's) and ours: content types, cache
headers, nothing outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authdemo.ui.bridge import load_static_dir
from authdemo.ui.library import library
from tests.support.live import Live


def client_script(ui: str) -> str:
    assets = library(ui).client_dir / "assets"  # type: ignore[arg-type]
    return next(p.name for p in assets.iterdir() if p.suffix == ".js")


def other(ui: str) -> str:
    return "reactpy" if ui == "idom" else "idom"


async def test_the_page_loads_the_ui_librarys_client_and_our_stylesheet(live: Live) -> None:
    response = await live.get("/")
    assert response.headers["content-type"].startswith("text/html")
    assert f"/_{live.ui}/assets/{client_script(live.ui)}" in response.text
    assert f"/_{other(live.ui)}/" not in response.text
    assert "/_authdemo/static/app.css" in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_hashed_assets_are_cached_forever_with_the_right_type(live: Live) -> None:
    response = await live.get(f"/_{live.ui}/assets/{client_script(live.ui)}")
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
        "/_{ui}/assets/../index.html",
        "/_{ui}/assets/..%2f..%2f..%2fconfig.py",
        "/_{ui}/assets/%2e%2e/%2e%2e/__init__.py",
        "/_{ui}/assets/%252e%252e%252f__init__.py",
        "/_{ui}/assets/..%2F..%2Fbackend%2Fsanic.py",
        "/_{ui}/assets/%2Fetc%2Fpasswd",
        "/_{ui}/assets/%2e%2e%2f%2e%2e%2fconfig.py",
        "/_{ui}/assets-secret/secret.js",
        "/_{ui}/assetsx/{script}",
        "/_{ui}/assets/..%5c..%5cconfig.py",
        "/_{ui}/assets/nothing.js",
        "/_authdemo/static/..%2f..%2fcli.py",
        "/_{ui}/modules/anything.js",
        "/_{ui}/stream-not",
        "/_{other}/assets/{other_script}",  # the other library's client is not served
        "/_auth/",
    ],
)
async def test_traversal_and_unknown_paths_are_404(live: Live, path: str) -> None:
    ui = live.ui
    response = await live.get(
        path.format(
            ui=ui,
            script=client_script(ui),
            other=other(ui),
            other_script=client_script(other(ui)),
        )
    )
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
