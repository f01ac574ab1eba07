"""The demo of session data: a note kept per session."""

from __future__ import annotations

from typing import Any

from ...domain import (
    AuthError,
)
from ..hooks import use_session
from ..library import component, html, use_state


@component
def Notepad() -> Any:
    """The demo of session data: a note kept per session, saved as you type."""
    data = use_session()
    status, set_status = use_state("")

    async def save(event_data: Any) -> None:
        target = event_data.get("target") if isinstance(event_data, dict) else None
        value = target.get("value") if isinstance(target, dict) else None
        if not isinstance(value, str):
            return
        set_status("saving")
        try:
            await data.set("note", value)
        except AuthError as failure:
            set_status(str(failure))
        else:
            set_status("saved")

    return html.section(
        {"class_name": "card wide"},
        html.h2("Notes"),
        html.div(
            {"class_name": "field"},
            html.label({"html_for": "note"}, "Kept with this session, in every tab"),
            html.textarea(
                {
                    # Re-created (with the new text) only when another view changed it,
                    # so that typing here is never overwritten by our own echo.
                    "key": f"note-{data.version}",
                    "id": "note",
                    "name": "note",
                    "default_value": str(data.get("note", "")),
                    "on_change": save,
                }
            ),
        ),
        html.p(
            {
                "id": {"saved": "note-saved", "saving": "note-saving"}.get(status, "note-error"),
                "class_name": "muted" if status in ("saved", "saving") else "error",
                "role": "status",
            },
            {"saved": "Saved.", "saving": "Saving…"}.get(status, status),
        )
        if status
        else html.p({"class_name": "muted"}, "Saved as you type."),
    )
