"""``AUTHDEMO_SMTP_URL``: where the mail outbox delivers, parsed and checked (no I/O).

``smtp://user:password@host:587`` — STARTTLS, required (the default port is 587);
``smtps://user:password@host:465`` — TLS from the first byte (implicit TLS).
Query options: ``starttls=off`` (``smtp://`` only: a relay on this machine or a private
network that offers no TLS), ``timeout=30`` (seconds, for each connection and
command), ``cafile=/path/ca.pem`` (trust this CA instead of the system's, e.g. a
company relay's own). User name and password are URL-encoded (``%40`` for ``@``).
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from .config import ConfigError

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    cafile: str | None = None

    @property
    def shown(self) -> str:
        """For logs: scheme, user, host and port — never the password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        tls = "" if self.implicit_tls or self.starttls else " (no TLS)"
        return f"{scheme}://{user}{self.host}:{self.port}{tls}"


def parse_smtp_url(name: str, raw: str) -> SmtpTarget:
    """Raises ``ConfigError`` naming ``name`` (never repeating a password)."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{name} is not a URL like smtp://user:password@host:587") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ConfigError(
            f"{name} must start with smtp:// (STARTTLS) or smtps:// (implicit TLS), "
            f"not {scheme + '://' if scheme else 'nothing'}"
        )
    if not parts.hostname:
        raise ConfigError(f"{name} names no host (example: smtp://user:password@host:587)")
    if parts.path not in ("", "/"):
        raise ConfigError(f"{name} has a path; use smtp://user:password@host:587?option=value")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"{name}: its options are not name=value pairs") from None
    unknown = set(query) - {"starttls", "timeout", "cafile"}
    if unknown:
        raise ConfigError(
            f"{name}: unknown option {sorted(unknown)[0]!r} (known: starttls, timeout, cafile)"
        )

    def option(key: str) -> str | None:
        values = query.get(key)
        return values[-1] if values else None

    implicit = scheme == "smtps"
    starttls = not implicit
    raw_starttls = option("starttls")
    if raw_starttls is not None:
        if implicit:
            raise ConfigError(f"{name}: starttls is for smtp:// (smtps:// is TLS throughout)")
        if raw_starttls.lower() not in ("on", "off"):
            raise ConfigError(f"{name}: starttls must be on or off")
        starttls = raw_starttls.lower() == "on"
    timeout = DEFAULT_TIMEOUT
    raw_timeout = option("timeout")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise ConfigError(f"{name}: timeout must be a number of seconds") from None
        if not 0 < timeout <= 300:
            raise ConfigError(f"{name}: timeout must be more than 0 and at most 300 seconds")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
        cafile=option("cafile") or None,
    )


class SmtpTransport:
    """Delivers through ``aiosmtplib``: a connection per mail (mails are rare; a kept
    connection would go stale between them), TLS as the URL says, the timeout on the
    connection and on every command."""

    def __init__(self, target: SmtpTarget) -> None:
        self._target = target
        self.description = target.shown

    async def send(self, message: EmailMessage) -> None:
        import aiosmtplib

        from .service.outbox import DeliveryFailed

        target = self._target
        context = ssl.create_default_context(cafile=target.cafile)
        try:
            await aiosmtplib.send(
                message,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.implicit_tls,
                start_tls=target.starttls,  # False with smtps: TLS from the start
                tls_context=context,
                timeout=target.timeout,
            )
        except aiosmtplib.SMTPResponseException as error:
            permanent = 500 <= error.code < 600
            raise DeliveryFailed(
                f"{target.shown} answered {error.code} {error.message[:120]}", permanent=permanent
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DeliveryFailed(f"{target.shown}: {reason[:160]}") from None


CONSOLE_RULE = "=" * 72


class ConsoleTransport:
    """The demo's "mail server": each mail printed to the console, clearly labelled,
    so that the sign-up and reset flows can be tried without SMTP. Never for a real
    deployment (codes are printed)."""

    description = "the console (demo only: no AUTHDEMO_SMTP_URL)"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage) -> None:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        stream = self._stream or sys.stderr
        stream.write(
            f"\n{CONSOLE_RULE}\nDEMO MAIL (not sent: no AUTHDEMO_SMTP_URL)\n"
            f"To: {message['To']}\nSubject: {message['Subject']}\n\n{text.rstrip()}\n"
            f"{CONSOLE_RULE}\n"
        )
        stream.flush()
