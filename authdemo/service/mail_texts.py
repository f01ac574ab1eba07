"""The words of every mail authdemo sends: a plain-text part (the code on a line of its
own) and an HTML part (the same words, every value escaped)."""

from __future__ import annotations

from html import escape

from ..mail import OutgoingMail


def _mail(
    to: str, subject: str, kind: str, paragraphs: list[str], code: str | None
) -> OutgoingMail:
    text_parts = list(paragraphs)
    html_parts = [f"<p>{escape(p)}</p>" for p in paragraphs]
    if code is not None:
        text_parts.insert(1, code)
        html_parts.insert(
            1,
            '<p style="font-size:1.6em;letter-spacing:0.2em;font-family:monospace">'
            f"<strong>{escape(code)}</strong></p>",
        )
    text = "\n\n".join(text_parts) + "\n"
    html = "<!doctype html><html><body>" + "".join(html_parts) + "</body></html>\n"
    return OutgoingMail(to, subject, text, html, kind)


def signup_code(site: str, to: str, username: str, code: str, minutes: int) -> OutgoingMail:
    return _mail(
        to,
        f"Your {site} sign-up code",
        "signup",
        [
            f"Enter this code to confirm your e-mail address and finish signing up as {username}:",
            f"It works once, for {minutes} minutes. If you did not sign up, ignore this mail: "
            "the account is deleted unless it is confirmed.",
        ],
        code,
    )


def signup_address_taken(site: str, to: str) -> OutgoingMail:
    return _mail(
        to,
        f"Someone tried to sign up at {site} with your address",
        "signup-taken",
        [
            f"Someone tried to sign up at {site} with this e-mail address, which already "
            "belongs to an account.",
            "If it was you: sign in instead, or use 'Forgot password?' on the sign-in form. "
            "If it was not you, you need not do anything.",
        ],
        None,
    )


def signup_username_taken(site: str, to: str, username: str) -> OutgoingMail:
    return _mail(
        to,
        f"Your {site} sign-up: choose another username",
        "signup-name-taken",
        [
            f"Someone signed up at {site} with this address and the username {username}, "
            "which is taken, so no account was made.",
            "If it was you, sign up again with another username.",
        ],
        None,
    )


def reset_code(site: str, to: str, username: str, code: str, minutes: int) -> OutgoingMail:
    return _mail(
        to,
        f"Your {site} password reset code",
        "reset",
        [
            f"Enter this code to choose a new password for {username}:",
            f"It works once, for {minutes} minutes. Every session of the account ends when "
            "the password is reset. If you did not ask for this, ignore this mail: your "
            "password stays as it is.",
        ],
        code,
    )


def reset_unknown(site: str, to: str) -> OutgoingMail:
    return _mail(
        to,
        f"Password reset at {site}",
        "reset-unknown",
        [
            f"Someone asked to reset the password of the {site} account with this e-mail "
            "address, but no account has this address (or it is not confirmed yet).",
            "If it was you, perhaps your account uses another address. If it was not you, "
            "you need not do anything.",
        ],
        None,
    )


def change_code(site: str, to: str, username: str, code: str, minutes: int) -> OutgoingMail:
    return _mail(
        to,
        f"Confirm your new {site} e-mail address",
        "change",
        [
            f"Enter this code to make this the e-mail address of {username}:",
            f"It works once, for {minutes} minutes. If you did not ask for this, ignore this mail.",
        ],
        code,
    )


def change_address_taken(site: str, to: str) -> OutgoingMail:
    return _mail(
        to,
        f"Someone tried to use your address at {site}",
        "change-taken",
        [
            f"Someone signed in at {site} tried to make this e-mail address theirs, but it "
            "already belongs to an account, so nothing changed.",
            "If it was you, you need not do anything.",
        ],
        None,
    )


def address_changed(site: str, to: str, username: str, new: str) -> OutgoingMail:
    return _mail(
        to,
        f"Your {site} e-mail address was changed",
        "changed",
        [
            f"The e-mail address of {username} was changed to {new}; mails go there from now on.",
            "If you did not do this, reset your password and tell the site's administrator.",
        ],
        None,
    )


def password_was_reset(site: str, to: str, username: str) -> OutgoingMail:
    return _mail(
        to,
        f"Your {site} password was reset",
        "reset-done",
        [
            f"The password of {username} was reset with a code sent to this address, and "
            "every session of the account ended.",
            "If you did not do this, tell the site's administrator.",
        ],
        None,
    )
