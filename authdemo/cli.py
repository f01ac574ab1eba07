"""The ``authdemo`` command: parse, call the account API (``authdemo.Accounts``) or the
service, turn errors into one clear line.

Exit codes: 0 done; 1 refused (invalid input, taken name, unknown user…);
2 usage error; 3 the database is missing, unreachable or not migrated.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import ipaddress
import logging
import os
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .accounts import Accounts
from .bootstrap import Runtime, runtime
from .config import UI_NAMES, ConfigError, Settings, UiName
from .db import migrations
from .db.engine import is_sqlite
from .domain import (
    PASSWORD_MAX,
    AuditEvent,
    AuthError,
    InvalidPassword,
    SchemaNotReady,
    SignedIn,
    StorageUnavailable,
    UsernameTaken,
    check_password_policy,
    normalize_username,
    printable,
)
from .logs import LOG_FORMAT, EscapingFormatter
from .mail import normalize_email
from .mfa import SecretBox, WeakMfaKey, parse_mfa_key
from .permissions import Permission, Role
from .service import PurgeReport, ResealReport, UserSummary

T = TypeVar("T")

log = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_DATABASE = 3


class Refused(click.ClickException):
    exit_code = EXIT_REFUSED


class DatabaseNotReady(click.ClickException):
    exit_code = EXIT_DATABASE


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def with_accounts(
    settings: Settings,
    action: Callable[[Accounts], Awaitable[T]],
    permissions: Sequence[Permission] = (),
) -> T:
    """Run ``action`` on the account API, opened on the database for it; errors to exits.
    ``permissions``: the app's declarations (``--permissions-from``), for role commands."""

    async def main() -> T:
        async with Accounts.open(settings, permissions=permissions) as accounts:
            return await action(accounts)

    return run_mapped(main())


def with_service(
    settings: Settings, action: Callable[[Runtime], Awaitable[T]], *, bulk: bool = False
) -> T:
    """Run ``action`` against a freshly opened runtime, mapping our errors to exits (the
    commands that are not about accounts: serving, purging, re-encrypting)."""

    async def main() -> T:
        async with runtime(settings, bulk=bulk) as rt:
            return await action(rt)

    return run_mapped(main())


def run_mapped(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``: a database that is not ready exits 3, any refusal of ours exits 1."""
    try:
        return asyncio.run(main)
    except (SchemaNotReady, StorageUnavailable) as error:
        raise DatabaseNotReady(str(error)) from None
    except AuthError as error:
        raise Refused(str(error)) from None


def read_new_password(password_stdin: bool) -> str:
    """From stdin (one line) or prompted twice with hidden input."""
    if password_stdin:
        line = sys.stdin.readline(PASSWORD_MAX * 4 + 2)
        return line.removesuffix("\n").removesuffix("\r")
    first = click.prompt("Password", hide_input=True, default="", show_default=False)
    check_or_refuse(first)
    second = click.prompt("Repeat password", hide_input=True, default="", show_default=False)
    if first != second:
        raise Refused("The two passwords do not match; nothing was changed.")
    return str(first)


def check_or_refuse(password: str) -> None:
    try:
        check_password_policy(password)
    except InvalidPassword as error:
        raise Refused(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="authdemo")
def main() -> None:
    """authdemo: server-side sessions and sign-in for IDOM apps on Sanic.

    Configuration comes from AUTHDEMO_* environment variables (see the settings
    reference in the documentation);
    AUTHDEMO_DATABASE_URL defaults to the SQLite file ./authdemo.db.
    """
    configure_logging(logging.WARNING)


def configure_logging(level: int) -> None:
    root = logging.getLogger()
    if not root.handlers:  # what logging.basicConfig does, with the escaping formatter
        handler = logging.StreamHandler()
        handler.setFormatter(EscapingFormatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("sanic").propagate = False  # Sanic's loggers have handlers of their own


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--debug", is_flag=True, help="Sanic debug mode and access log.")
@click.option(
    "--ui",
    type=click.Choice(UI_NAMES, case_sensitive=False),
    help="The UI library to serve the demo with (default: AUTHDEMO_UI, else idom).",
)
def run(host: str, port: int, workers: int, debug: bool, ui: UiName | None) -> None:
    """Serve the app."""
    settings = load_settings()
    if ui is not None:
        settings = replace(settings, ui=ui)
    if settings.smtp_url is None:
        # The demo path: without SMTP, sign-up and reset can still be tried, their mails
        # printed to this console (an app of its own has no such fallback).
        settings = replace(settings, mail_console=True)
    check_ui_installed(settings.ui)
    # Refuse to start on a missing or unmigrated database; say so if the connections
    # this host will open do not fit what PostgreSQL has left.
    warning = with_service(settings, partial(budget_warning, settings=settings, workers=workers))
    if warning is not None:
        log.warning("%s", warning)
    if not settings.allowed_hosts and not is_loopback(host):
        log.warning(
            "AUTHDEMO_ALLOWED_HOSTS is not set: requests for any host name are served, "
            "which lets pages on other sites reach this server through DNS rebinding. "
            "Set it to the names clients use, e.g. AUTHDEMO_ALLOWED_HOSTS=app.example.com"
        )
    serve(settings, host=host, port=port, workers=workers, debug=debug)


@main.command()
@click.option(
    "--sql",
    is_flag=True,
    help="Print the SQL that builds the schema from nothing instead (the database is "
    "not opened; the URL picks the dialect).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Apply nothing; exit 0 when the database is up to date, 3 when migrations are pending.",
)
def migrate(sql: bool, check: bool) -> None:
    """Create or upgrade the database (AUTHDEMO_DATABASE_URL) to this version's schema.

    Works from any folder: the migrations ship with the package. authdemo keeps its
    revision in its own table, authdemo_alembic_version, beside any alembic history of
    your app's; a database that still has it in alembic_version is moved over.
    """
    if sql and check:
        raise click.UsageError("--sql and --check do not go together.")
    settings = load_settings()
    # Behind PgBouncer, straight to PostgreSQL (AUTHDEMO_LISTEN_URL): one session for
    # the whole migration, and no pooler between alembic's statements.
    url = settings.migration_url
    try:
        if sql:
            print_migration_sql(url)
        elif check:
            click.echo(describe_status(migrations.status(url)))
        else:
            click.echo(run_migrations(url))
    except SchemaNotReady as error:
        raise DatabaseNotReady(str(error)) from None


def print_migration_sql(url: str) -> None:
    try:
        migrations.upgrade_sql(url, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # `authdemo migrate --sql | head`: the reader left; say nothing more (Python's
        # documented recipe: point stdout at devnull so the exit flush cannot fail).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def describe_status(status: migrations.Status) -> str:
    """One line for ``migrate --check``; raises (exit 3) unless the database is up to date."""
    if status.up_to_date:
        return f"{status.url} is up to date (authdemo revision {status.head})."
    at = (
        f"is at authdemo revision {status.current}"
        if status.current
        else f"records authdemo revision {status.legacy} in the shared "
        f"{migrations.LEGACY_VERSION_TABLE} table"
        if status.legacy
        else "has no authdemo tables yet"
    )
    pending = f"; pending: {', '.join(status.pending)}" if status.pending else ""
    raise DatabaseNotReady(f"{status.url} {at}{pending}: {migrations.MIGRATE_HINT}.")


def run_migrations(url: str) -> str:
    before = migrations.status(url)  # refuses a revision this version does not know
    if before.up_to_date:
        return f"{before.url} is already at authdemo revision {before.head}; nothing to do."
    done = migrations.upgrade(url)
    start = done.start
    line = (
        f"Migrated {before.url} from authdemo revision {start} to {before.head}"
        if start and start != before.head
        else f"{before.url} is at authdemo revision {before.head}"
        if start
        else f"Created authdemo's tables in {before.url} (revision {before.head})"
    )
    if done.adopted:
        line += (
            f"; its revision moved from {migrations.LEGACY_VERSION_TABLE} to "
            f"{migrations.VERSION_TABLE}"
        )
    return line + "."


def is_loopback(host: str) -> bool:
    """Only this machine can connect to ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name we would have to resolve: assume others can reach it


async def budget_warning(rt: Runtime, *, settings: Settings, workers: int) -> str | None:
    """PostgreSQL: one line if this host's connections may not fit (``db.budget``)."""
    if is_sqlite(settings.database_url):
        return None
    from .db.budget import read_budget

    return (await read_budget(rt.engine, settings, workers)).warning()


def check_ui_installed(ui: UiName) -> None:
    from .ui.library import library

    try:
        library(ui)
    except ImportError as missing:
        raise click.ClickException(str(missing)) from None


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not listen on (a port another
    server holds, a host name that is not this machine's), before any worker starts:
    Sanic would otherwise fail with a traceback from inside its manager."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Sanic binds
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        hint = " (is another server running there? choose another --port)"
        busy = error.errno == errno.EADDRINUSE
        raise click.ClickException(
            f"Cannot listen on {host}:{port}: {reason.lower()}{hint if busy else ''}"
        ) from None


def serve(settings: Settings, *, host: str, port: int, workers: int, debug: bool) -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    check_port(host, port)
    loader = AppLoader(factory=partial(worker_app, settings, debug=debug))
    app = loader.load()
    single = workers == 1
    app.prepare(
        host=host,
        port=port,
        workers=workers,
        debug=debug,
        access_log=debug,
        motd=False,
        single_process=single,
    )
    click.echo(
        f"authdemo serving on http://{host}:{port} ({workers} worker(s), UI: {settings.ui})",
        err=True,
    )
    if single:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


def worker_app(settings: Settings, *, debug: bool = False) -> Any:
    """The app factory each worker process calls (it starts with fresh logging)."""
    from .http.app import create_app

    configure_logging(logging.INFO)
    app = create_app(settings)
    one_log_format(debug=debug)  # after Sanic (created above) set up its own loggers
    return app


SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets")
"""Sanic's loggers whose lines `authdemo run` writes in its own format (the access log,
on with --debug only, keeps Sanic's: its record carries the request in fields)."""


def one_log_format(*, debug: bool) -> None:
    """Sanic's lines as authdemo's: time, level, logger name, message. A websocket's
    open and close (which the websockets library logs at INFO, once per page view) only
    with --debug."""
    formatter = EscapingFormatter(LOG_FORMAT)
    for name in SANIC_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
    logging.getLogger("sanic.websockets").setLevel(logging.DEBUG if debug else logging.WARNING)


@main.command("create-user")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option(
    "--email",
    metavar="ADDRESS",
    help="The user's e-mail address (counted as verified: you vouch for it).",
)
def create_user(username: str, password_stdin: bool, email: str | None) -> None:
    """Create a user; the password is prompted for twice (hidden)."""
    settings = load_settings()
    try:
        display, _ = normalize_username(username)
        address = normalize_email(email)[0] if email is not None else None
    except AuthError as error:
        raise Refused(str(error)) from None
    password = read_new_password(password_stdin)
    check_or_refuse(password)

    async def create(accounts: Accounts) -> None:
        await accounts.create_user(display, password, email=address)

    with_accounts(settings, create)
    click.echo(f"Created user {display!r}" + (f" with the address {address}." if address else "."))


@main.command("set-email")
@click.argument("username")
@click.argument("address", required=False)
@click.option("--remove", is_flag=True, help="Remove the user's address instead.")
def set_email(username: str, address: str | None, remove: bool) -> None:
    """Set a user's e-mail address (counted as verified), or remove it with --remove."""
    if (address is None) != remove:
        raise Refused("Give either an ADDRESS or --remove.")
    settings = load_settings()
    try:
        shown = normalize_email(address)[0] if address is not None else None
    except AuthError as error:
        raise Refused(str(error)) from None

    async def act(accounts: Accounts) -> str:
        return (await accounts.set_email(username, shown)).username

    name = with_accounts(settings, act)
    click.echo(f"Address of {name!r} set to {shown}." if shown else f"Address of {name!r} removed.")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, a rule under the header; reads well in a terminal.

    Every cell is escaped (``domain.printable``): user agents, addresses and details
    come from clients, so a row can never hold a line break or a terminal escape."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers).rstrip(), line.format(*("-" * w for w in widths)).rstrip()]
    out += [line.format(*row).rstrip() for row in rows]
    return "\n".join(out)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def stored_name(settings: Settings, username: str) -> str:
    """The user's name as stored (``ALICE`` → ``alice``); refuses unknown users."""

    async def act(accounts: Accounts) -> str:
        return (await accounts.get_user(username)).username

    return with_accounts(settings, act)


def ended(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


@main.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
def set_password(username: str, password_stdin: bool) -> None:
    """Set a user's password; every session of theirs ends at once (live)."""
    settings = load_settings()
    name = stored_name(settings, username)  # an unknown user is refused before any prompt
    password = read_new_password(password_stdin)
    check_or_refuse(password)

    async def act(accounts: Accounts) -> int:
        return await accounts.set_password(name, password)

    count = with_accounts(settings, act)
    click.echo(f"Password of {name!r} changed; {ended(count, 'session')} ended.")


@main.command("disable-user")
@click.argument("username")
def disable_user(username: str) -> None:
    """Disable an account: no more sign-ins, and all its sessions end at once (live)."""
    settings = load_settings()

    async def act(accounts: Accounts) -> tuple[str, int]:
        count = await accounts.disable_user(username)
        return (await accounts.get_user(username)).username, count

    name, count = with_accounts(settings, act)
    click.echo(f"Disabled {name!r}; {ended(count, 'session')} ended.")


@main.command("enable-user")
@click.argument("username")
def enable_user(username: str) -> None:
    """Enable a disabled account again."""
    settings = load_settings()

    async def act(accounts: Accounts) -> str:
        await accounts.enable_user(username)
        return (await accounts.get_user(username)).username

    click.echo(f"Enabled {with_accounts(settings, act)!r}.")


@main.command("list-users")
def list_users() -> None:
    """Every user, with status and live sessions."""
    settings = load_settings()

    async def act(accounts: Accounts) -> list[UserSummary]:
        return await accounts.list_users()

    users = with_accounts(settings, act)
    if not users:
        click.echo("No users yet. Create one with: authdemo create-user USERNAME")
        return
    rows = [
        [
            u.user.username,
            "active" if u.user.is_active else "disabled",
            str(u.live_sessions),
            "on" if u.mfa else "off",
            ",".join(u.roles) or "-",
            when(u.user.created_at),
            when(u.user.password_changed_at),
            (u.user.email or "-") + (" (unverified)" if u.user.awaiting_verification else ""),
        ]
        for u in users
    ]
    headers = [
        "USER",
        "STATUS",
        "SESSIONS",
        "2FA",
        "ROLES",
        "CREATED (UTC)",
        "PASSWORD SET (UTC)",
        "EMAIL",
    ]
    click.echo(table(headers, rows))


# --- roles ----------------------------------------------------------------------------


@main.group()
def role() -> None:
    """Roles: create and delete them, grant and revoke them (each audited; every open
    page of the user follows within a second)."""


def load_permissions(spec: str | None) -> list[Permission]:
    """The app's declared permissions from ``MODULE:NAME`` (a sequence of ``Permission``),
    imported with the current folder on the path, as ``sanic app:app`` does."""
    if not spec:
        return []
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(
            f"{spec!r}: expected MODULE:NAME, e.g. myapp.rights:PERMISSIONS",
            param_hint="--permissions-from",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, SyntaxError) as error:
        raise click.BadParameter(
            f"cannot load {spec!r}: {error}", param_hint="--permissions-from"
        ) from None
    declared = list(found) if isinstance(found, (list, tuple)) else None
    if declared is None or not all(isinstance(p, Permission) for p in declared):
        raise click.BadParameter(
            f"{spec!r} is not a list of authdemo.Permission", param_hint="--permissions-from"
        )
    return declared


@role.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "-p",
    "patterns",
    multiple=True,
    required=True,
    help="A permission the role grants: a declared name (notes:write), a prefix and * "
    "(notes:*), or * alone. Repeat for several.",
)
@click.option("--description", default="", help="One line saying what the role is for.")
@click.option(
    "--permissions-from",
    envvar="AUTHDEMO_PERMISSIONS_FROM",
    metavar="MODULE:NAME",
    help="Your app's list of declared Permissions (e.g. myapp.rights:PERMISSIONS); "
    "without it only the built-in authdemo:admin is known. "
    "Default: AUTHDEMO_PERMISSIONS_FROM.",
)
def role_create(
    name: str, patterns: tuple[str, ...], description: str, permissions_from: str | None
) -> None:
    """Create a role granting the given permissions."""
    settings = load_settings()
    declared = load_permissions(permissions_from)

    async def act(accounts: Accounts) -> Role:
        return await accounts.create_role(name, patterns, description)

    created = with_accounts(settings, act, declared)
    click.echo(f"Created role {created.name!r} granting {', '.join(created.patterns)}.")


@role.command("delete")
@click.argument("name")
def role_delete(name: str) -> None:
    """Delete a role; everyone who holds it loses it at once (live)."""
    settings = load_settings()

    async def act(accounts: Accounts) -> int:
        return await accounts.delete_role(name)

    count = with_accounts(settings, act)
    click.echo(f"Deleted role {name!r}; revoked from {ended(count, 'user')}.")


@role.command("grant")
@click.argument("username")
@click.argument("role_name", metavar="ROLE")
def role_grant(username: str, role_name: str) -> None:
    """Give USERNAME the role ROLE (their open pages follow within a second)."""
    settings = load_settings()

    async def act(accounts: Accounts) -> tuple[str, bool]:
        granted = await accounts.grant_role(username, role_name)
        return (await accounts.get_user(username)).username, granted

    name, granted = with_accounts(settings, act)
    if granted:
        click.echo(f"Granted {role_name!r} to {name!r}.")
    else:
        click.echo(f"{name!r} holds {role_name!r} already; nothing changed.")


@role.command("revoke")
@click.argument("username")
@click.argument("role_name", metavar="ROLE")
def role_revoke(username: str, role_name: str) -> None:
    """Take the role ROLE from USERNAME (their open pages follow within a second, and
    actions that need it are refused from now on)."""
    settings = load_settings()

    async def act(accounts: Accounts) -> tuple[str, bool]:
        revoked = await accounts.revoke_role(username, role_name)
        return (await accounts.get_user(username)).username, revoked

    name, revoked = with_accounts(settings, act)
    if revoked:
        click.echo(f"Revoked {role_name!r} from {name!r}.")
    else:
        click.echo(f"{name!r} does not hold {role_name!r}; nothing changed.")


@role.command("list")
def role_list() -> None:
    """Every role, with the permissions it grants and how many users hold it."""
    settings = load_settings()

    async def act(accounts: Accounts) -> list[Role]:
        return await accounts.roles()

    rows = [
        [r.name, ", ".join(r.patterns), str(r.holders), r.description or "-"]
        for r in with_accounts(settings, act)
    ]
    click.echo(table(["ROLE", "PERMISSIONS", "USERS", "DESCRIPTION"], rows))


@main.command("mfa-reset")
@click.argument("username")
def mfa_reset(username: str) -> None:
    """Remove a user's two-factor sign-in (a lost phone): every session of theirs ends
    at once (live); they sign in with the password and may set it up again."""
    settings = load_settings()

    async def act(accounts: Accounts) -> tuple[str, int]:
        count = await accounts.reset_two_factor(username)
        return (await accounts.get_user(username)).username, count

    name, count = with_accounts(settings, act)
    click.echo(f"Two-factor sign-in of {name!r} removed; {ended(count, 'session')} ended.")


@main.command("mfa-reencrypt")
@click.option("--new-key-stdin", is_flag=True, help="Read the new key from stdin.")
def mfa_reencrypt(new_key_stdin: bool) -> None:
    """Re-encrypt every two-factor secret under a new key.

    AUTHDEMO_MFA_KEY must open the current secrets; the new key is prompted for twice
    (hidden) or read from stdin. Nothing is written unless the new key opens what it
    encrypts. Safe to run again: secrets already under the new key are skipped.
    """
    settings = load_settings()
    if not settings.mfa_keys:
        raise Refused("AUTHDEMO_MFA_KEY is not set: it must hold the key the secrets are under.")
    if new_key_stdin:
        new_key = new_mfa_key(sys.stdin.readline(256).strip())
    else:
        new_key = click.prompt(
            "New key",
            hide_input=True,
            confirmation_prompt="Repeat the new key",
            value_proc=new_mfa_key,
        )
    new_box = SecretBox((new_key,))

    async def act(rt: Runtime) -> ResealReport:
        return await rt.service.reseal_mfa_secrets(new_box)

    report = with_service(settings, act)
    click.echo(f"Re-encrypted {ended(report.resealed, 'secret')} under the new key.")
    problems = []
    if report.unreadable:
        problems.append(
            f"{ended(report.unreadable, 'secret')} did not open with AUTHDEMO_MFA_KEY and "
            "stayed as they were (reset those users with: authdemo mfa-reset USERNAME)."
        )
    if report.changed:
        problems.append(
            f"{ended(report.changed, 'secret')} changed while this ran (two-factor sign-in "
            "set up again meanwhile) and stayed under the old key: run this again."
        )
    if problems:
        raise Refused(" ".join(problems))
    click.echo(
        "Now set AUTHDEMO_MFA_KEY to the new key everywhere (NEW,OLD while the change rolls out)."
    )


def new_mfa_key(raw: str) -> bytes:
    """The new key of ``mfa-reencrypt``, or ``Refused`` saying what is wrong with it (at
    the first prompt already, before it is asked for again)."""
    try:
        return parse_mfa_key(raw)
    except WeakMfaKey as error:
        raise Refused(str(error).replace("AUTHDEMO_MFA_KEY", "The new key")) from None


@main.command("sessions")
@click.argument("username", required=False)
def sessions(username: str | None) -> None:
    """Live signed-in sessions, of one user or of everyone."""
    settings = load_settings()

    async def act(accounts: Accounts) -> list[SignedIn]:
        return await accounts.sessions(username)

    found = with_accounts(settings, act)
    if not found:
        click.echo("No live sessions.")
        return
    rows = [
        [
            f.session.short_id,
            f.user.username,
            f.session.client_addr or "-",
            when(f.session.created_at),
            when(f.session.last_seen_at),
            when(f.session.expires_at()),
            shorten(f.session.user_agent, 40) or "-",
        ]
        for f in found
    ]
    click.echo(
        table(
            ["SESSION", "USER", "CLIENT", "SIGNED IN", "LAST SEEN", "EXPIRES", "USER AGENT"],
            rows,
        )
    )


@main.command("revoke-sessions")
@click.argument("username")
def revoke_sessions(username: str) -> None:
    """End every session of a user at once; open tabs switch to signed out (live)."""
    settings = load_settings()

    async def act(accounts: Accounts) -> tuple[str, int]:
        count = await accounts.revoke_sessions(username)
        return (await accounts.get_user(username)).username, count

    name, count = with_accounts(settings, act)
    click.echo(f"Revoked {ended(count, 'session')} of {name!r}.")


@main.command("purge-expired")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def purge_expired(batch: int) -> None:
    """Delete expired sessions, tickets, stale throttle rows, old audit rows, expired codes,
    unverified sign-ups and old mails, in batches.

    Safe while the server runs: each batch is its own short transaction.
    """
    settings = load_settings()

    async def act(rt: Runtime) -> PurgeReport:
        return await rt.service.purge_expired(batch=batch, pause=0.01)

    report = with_service(settings, act, bulk=True)
    click.echo(
        f"Purged {ended(report.sessions, 'session')}, {ended(report.tickets, 'ticket')}, "
        f"{ended(report.throttle_rows, 'throttle row')}, "
        f"{ended(report.broadcasts, 'delivered broadcast')}. "
        f"Audit trail: {ended(report.audit_events, 'event')} older than "
        f"{describe_age(settings.audit_retention)} purged."
        + (
            f" {ended(report.mfa_pending, 'expired two-factor step')} purged."
            if report.mfa_pending
            else ""
        )
        + (
            f" {ended(report.unverified_accounts, 'unverified sign-up')} purged."
            if report.unverified_accounts
            else ""
        )
        + (f" {ended(report.mails, 'old mail')} purged." if report.mails else "")
    )


def shorten(text: str, width: int) -> str:
    return text[:width] + "…" if len(text) > width else text


def describe_age(age: timedelta) -> str:
    """``90 days``, ``36 hours``: how the retention reads in a sentence."""
    if age % timedelta(days=1) == timedelta(0):
        return ended(age.days, "day")
    return ended(int(age.total_seconds() // 3600), "hour")


@main.command("events")
@click.option("--user", "username", help="Only this user's events.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
def events(username: str | None, limit: int) -> None:
    """The audit trail, newest first."""
    settings = load_settings()

    async def act(accounts: Accounts) -> list[AuditEvent]:
        return await accounts.events(username, limit)

    found = with_accounts(settings, act)
    if not found:
        click.echo("No events.")
        return
    rows = [
        [
            when(e.at),
            str(e.kind),
            e.username or "-",
            e.session or "-",
            e.client_addr or "-",
            e.detail or "",
        ]
        for e in found
    ]
    click.echo(table(["TIME (UTC)", "EVENT", "USER", "SESSION", "CLIENT", "DETAIL"], rows))


DEMO_USERS = ("alice", "bob")
DEMO_CREDENTIALS = Path(".authdemo-demo-credentials")


@main.command("demo-accounts", hidden=True)
def demo_accounts() -> None:
    """Demo path only: make sure alice and bob exist and print their passwords."""
    settings = load_settings()
    known = _read_demo_credentials()

    async def ensure(accounts: Accounts) -> dict[str, str]:
        result: dict[str, str] = {}
        for name in DEMO_USERS:
            password = known.get(name) or secrets.token_urlsafe(9)
            try:
                await accounts.create_user(name, password)
            except UsernameTaken:
                if name not in known:  # exists, password unknown to us: reset it
                    await accounts.set_password(name, password)
            result[name] = password
        return result

    credentials = with_accounts(settings, ensure)
    write_private(DEMO_CREDENTIALS, "".join(f"{n}:{p}\n" for n, p in credentials.items()))
    click.echo("Demo accounts (demo path only; never use these on a real deployment).")
    click.echo("Their initial passwords (a password changed in the app is not shown here):")
    for name, password in credentials.items():
        click.echo(f"    username: {name:<6}  initial password: {password}")


DEMO_MFA_KEY = Path(".authdemo-demo-mfa-key")


@main.command("demo-mfa-key", hidden=True)
def demo_mfa_key() -> None:
    """Demo path only: print the demo's two-factor key, made once and kept (mode 0600)
    beside the demo credentials, so that `./dev.sh demo` has two-factor sign-in."""
    try:
        key = DEMO_MFA_KEY.read_text().strip()
        parse_mfa_key(key)
    except (OSError, WeakMfaKey):
        key = secrets.token_urlsafe(32)
        write_private(DEMO_MFA_KEY, key + "\n")
    click.echo(key)


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an older file made with other modes


def _read_demo_credentials() -> dict[str, str]:
    try:
        lines = DEMO_CREDENTIALS.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)
