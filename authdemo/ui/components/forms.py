"""Pieces every form of the components shares: reading a submitted form, labelled
fields, the hidden username of a password form, a code field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...domain import (
    User,
)
from ..library import event, html


def form_values(data: Any) -> dict[str, str]:
    """Name → value of the fields of a submitted form, from IDOM's serialised event."""
    target = data.get("target") if isinstance(data, dict) else None
    elements = target.get("elements") if isinstance(target, dict) else None
    values: dict[str, str] = {}
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict):
            name, value = element.get("name"), element.get("value")
            if isinstance(name, str) and name and isinstance(value, str):
                values.setdefault(name, value)
    return values


def posted_form(
    form_id: str,
    on_submit: Callable[[Any], Any],
    *,
    key: str | None = None,
    class_name: str | None = None,
    described_by: str | None = None,
) -> dict[str, Any]:
    """The attributes of a form that is handled over the websocket: ``method="post"``
    (a browser that submits it before the page's script runs never puts a password in
    the address), no navigation, and the submit handled on the server. ``described_by``:
    the id of the element that describes it now (its error while it shows one)."""
    attributes: dict[str, Any] = {"id": form_id}
    if key is not None:
        attributes["key"] = key
    if class_name is not None:
        attributes["class_name"] = class_name
    attributes["method"] = "post"
    attributes["action"] = "#"
    if described_by is not None:
        attributes["aria_describedby"] = described_by
    attributes["on_submit"] = event(on_submit, prevent_default=True)
    return attributes


def field(label: str, **attributes: Any) -> Any:
    return html.div(
        {"class_name": "field"},
        html.label({"html_for": attributes["id"]}, label),
        html.input(attributes),
    )


def account_field(user: User | None) -> Any:
    """The hidden, read-only username of a form that asks for the signed-in user's
    password: password managers (and Chromium's form checks) want to know whose it is."""
    return html.input(
        {
            "type": "text",
            "name": "username",
            "autocomplete": "username",
            "value": user.username if user else "",
            "read_only": True,
            "hidden": True,
        }
    )


def code_field(label: str, field_id: str, *, auto_focus: bool = True) -> Any:
    """A field for a 6-digit code or a recovery code (letters and digits): no
    ``pattern``, and a keyboard with letters (a numeric ``inputmode`` would hide them on
    phones)."""
    return field(
        label,
        id=field_id,
        name="code",
        type="text",
        autocomplete="one-time-code",
        inputmode="text",
        autocapitalize="characters",
        spellcheck="false",
        maxlength=20,
        required=True,
        auto_focus=auto_focus,
    )
