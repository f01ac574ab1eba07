"""Accounts by e-mail: addresses, mailed codes, limits and mails as values — no I/O.

- An address is stored as given (``email_validator``'s normal form: the domain
  lower-cased and IDNA-checked) and found by its key, the whole address case-folded:
  ``Ann@Example.org`` and ``ann@example.org`` are one account's.
- A code is 8 random digits, mailed once, stored only as a keyed digest
  (``TokenCodec.email_code_digest``), valid for ``EmailPolicy.code_ttl`` (≤ 15 min) and
  ``EmailPolicy.code_tries`` wrong tries; a new code for the same user and purpose
  replaces the previous one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum

from .domain import AuthError, describe_wait

EMAIL_MAX = 254
CODE_DIGITS = 8


# --- exceptions -------------------------------------------------------------------------


class InvalidEmail(AuthError):
    """Not an e-mail address (the reason, in words a person understands)."""


class EmailTaken(AuthError):
    """Another account has this address (told to operators only; self-service answers
    never say so)."""

    def __init__(self) -> None:
        super().__init__("Another account already uses this e-mail address.")


class SignupClosed(AuthError):
    def __init__(self) -> None:
        super().__init__("Sign-up is not open on this server.")


class MailUnavailable(AuthError):
    """No way to send mail on this server (no ``AUTHDEMO_SMTP_URL``, not the demo): what
    needs a mailed code is unavailable."""

    def __init__(self) -> None:
        super().__init__("This server cannot send e-mail, so this is not available here.")


class WrongEmailCode(AuthError):
    """A wrong, used, replaced or expired code (one message for each)."""

    def __init__(self) -> None:
        super().__init__("That code is wrong or has expired. Check the latest e-mail we sent.")


class EmailCodeLocked(WrongEmailCode):
    """Too many wrong codes: this code is void; a new one must be asked for."""

    def __init__(self) -> None:
        AuthError.__init__(
            self, "Too many wrong codes: this code no longer works. Ask for a new one."
        )


class EmailNotVerified(AuthError):
    """The password was right, but the account's address is not verified yet."""

    def __init__(self, email: str | None = None) -> None:
        super().__init__(
            "Confirm your e-mail address first: enter the code we sent you, or ask for a new one."
        )
        self.email = email
        """The address the code went to (told only after a right password)."""


class MailThrottled(AuthError):
    """A limit on mails or sign-ups (per address or network) was reached."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__(f"Too many requests from here. Try again in {describe_wait(retry_after)}.")
        self.retry_after = retry_after


# --- addresses and codes -------------------------------------------------------------------


def normalize_email(raw: str) -> tuple[str, str]:
    """``(address, key)``: the address in its normal form, and the lookup key.

    Raises :class:`InvalidEmail` with a reason a person can act on.
    """
    text = raw.strip()
    if not text:
        raise InvalidEmail("Enter an e-mail address.")
    if len(text) > EMAIL_MAX:
        raise InvalidEmail(f"An e-mail address has at most {EMAIL_MAX} characters.")
    # Imported on first use: its tables take 40 ms to build, which every command and
    # server would pay at start whether or not it ever reads an address.
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(f"That is not an e-mail address: {error}") from None
    address = valid.normalized
    if len(address) > EMAIL_MAX:
        raise InvalidEmail(f"An e-mail address has at most {EMAIL_MAX} characters.")
    return address, address.casefold()


def email_key(raw: str) -> str | None:
    """The lookup key of ``raw``, or None when it is no address."""
    try:
        return normalize_email(raw)[1]
    except InvalidEmail:
        return None


def new_email_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def clean_code(typed: str) -> str | None:
    """The digits of a typed code (spaces and dashes allowed), or None when it cannot be one."""
    digits = "".join(c for c in typed[:64] if c not in " -\t")
    if len(digits) != CODE_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


class CodePurpose(StrEnum):
    VERIFY = "verify"
    """Sign-up: proves the address of a new account."""
    RESET = "reset"
    """A forgotten password."""
    CHANGE = "change"
    """A new address for a signed-in user."""


@dataclass(frozen=True)
class EmailCode:
    id: int
    user_id: int
    purpose: CodePurpose
    email: str
    email_key: str
    code_digest: str
    expires_at: datetime
    tries: int


@dataclass(frozen=True)
class EmailPolicy:
    """How long codes live, how often they may be tried, and the limits on mail."""

    code_ttl: timedelta = timedelta(minutes=15)
    code_tries: int = 5
    signup_ttl: timedelta = timedelta(hours=24)
    """An unverified account made by sign-up is purged after this."""
    window: timedelta = timedelta(hours=1)
    mails_per_address: int = 5
    """Mails one address may be sent per window (codes and notices)."""
    mails_per_network: int = 20
    """Mail requests one client network may make per window."""
    signups_per_network: int = 10
    codes_per_network: int = 30
    """Codes one client network may enter per window (on top of each code's own tries)."""
    signup_open: bool = False
    """``AUTHDEMO_SIGNUP=open``: anyone may make an account."""
    mail_available: bool = False
    """Mail can be sent (SMTP, or the demo's console): without it, sign-up, resets and
    changes of address are unavailable."""
    answer_floor: timedelta = timedelta(milliseconds=300)
    """The least time an answer that must not tell known from unknown addresses takes:
    both kinds do the same work, and the reply waits until this much time has passed."""

    def __post_init__(self) -> None:
        if not timedelta(0) < self.code_ttl <= timedelta(minutes=15):
            raise ValueError("code_ttl must be more than 0 and at most 15 minutes")
        if not 1 <= self.code_tries <= 5:
            raise ValueError("code_tries must be between 1 and 5")


# --- mails ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingMail:
    """A mail as the outbox stores it."""

    recipient: str
    subject: str
    text: str
    html: str
    kind: str


@dataclass(frozen=True)
class QueuedMail:
    """A row of the outbox a sender claimed."""

    id: int
    mail: OutgoingMail
    attempts: int
    created_at: datetime
    claim: str


def backoff(attempts: int) -> timedelta:
    """How long after the ``attempts``-th failure the next try waits: 2 s doubling, at
    most 5 minutes."""
    return timedelta(seconds=min(300, 2 ** min(attempts, 9)))


def compose(mail: OutgoingMail, sender: str, message_id: str) -> EmailMessage:
    """The message as sent: plain text first, HTML as its alternative."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def sender_address(sender: str) -> str:
    """The address of a From: ``Name <a@example.org>`` or ``a@example.org``."""
    name, address = parseaddr(sender)
    if not address or (name and "<" not in sender):
        raise InvalidEmail(f"{sender!r} is neither an address nor Name <address>.")
    return normalize_email(address)[0]


def message_id(mail_id: int, created_at: datetime, sender: str) -> str:
    """The same for every attempt at one outbox row: a mail delivered twice (a sender
    that stopped between the server's acceptance and marking the row sent) carries one
    Message-ID, which mail clients show once."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] or "authdemo.invalid"
    return f"<authdemo.{mail_id}.{int(created_at.timestamp())}@{domain}>"
