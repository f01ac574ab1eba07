"""The attributes every form of the components shares (``posted_form``)."""

from __future__ import annotations

from typing import Any

from authdemo.ui.components.forms import form_values, posted_form


async def handler(data: Any) -> None:
    return None


def test_a_posted_form_never_navigates_and_is_handled_on_the_server() -> None:
    attributes = posted_form("login-form", handler, key="login-form-2", class_name="card")
    submit = attributes.pop("on_submit")
    assert attributes == {
        "id": "login-form",
        "key": "login-form-2",
        "class_name": "card",
        "method": "post",  # submitted before the script runs: no password in the address
        "action": "#",
    }
    assert submit.prevent_default
    assert submit.function is not None


def test_it_names_what_describes_it_only_when_something_does() -> None:
    assert "aria_describedby" not in posted_form("f", handler)
    assert posted_form("f", handler, described_by="f-error")["aria_describedby"] == "f-error"


def test_submitted_values_are_read_by_name_first_one_wins() -> None:
    data = {
        "target": {
            "elements": [
                {"name": "username", "value": "alice"},
                {"name": "username", "value": "mallory"},
                {"name": "", "value": "x"},
                {"name": "password", "value": 3},
                "junk",
            ]
        }
    }
    assert form_values(data) == {"username": "alice"}
    assert form_values(None) == {}
