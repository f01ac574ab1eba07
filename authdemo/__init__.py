"""authdemo: server-side sessions and sign-in for IDOM single-page apps on Sanic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Auth", "Settings", "create_app", "use_auth"]

if TYPE_CHECKING:
    from .config import Settings
    from .web.app import create_app
    from .web.hooks import Auth, use_auth


def __getattr__(name: str) -> Any:
    # Lazy, so that `import authdemo` (e.g. by alembic's env.py) does not pull in Sanic.
    if name == "Settings":
        from .config import Settings

        return Settings
    if name == "create_app":
        from .web.app import create_app

        return create_app
    if name in ("Auth", "use_auth"):
        from .web import hooks

        return getattr(hooks, name)
    raise AttributeError(name)
