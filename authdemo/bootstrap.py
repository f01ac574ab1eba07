"""Wiring: settings → engine → unit of work → service. Used by the web app and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from .cache import SessionCache
from .config import Settings
from .db.engine import create_engine, is_sqlite, keep_checkpointing
from .db.notify import ChangeFeedTarget
from .db.schema import check_schema
from .db.uow import SqlUnitOfWorkFactory
from .domain import Clock, SessionPolicy, SystemClock, ThrottlePolicy
from .events import InProcessEventBus
from .mail import EmailPolicy
from .mfa import SecretBox
from .permissions import PermissionRegistry
from .security import Argon2Hasher, PasswordHasher, TokenCodec
from .service import AuthService, ensure_token_key

if TYPE_CHECKING:
    from .service.outbox import MailSender

HasherFactory = Callable[[Settings], PasswordHasher]


def default_hasher(settings: Settings) -> PasswordHasher:
    return Argon2Hasher(settings.argon2, settings.login_workers)


def throttle_policy(settings: Settings) -> ThrottlePolicy:
    return ThrottlePolicy(
        account_threshold=settings.throttle_account_failures,
        address_threshold=settings.throttle_address_failures,
        cap=settings.throttle_max_block,
    )


def email_policy(settings: Settings) -> EmailPolicy:
    return EmailPolicy(signup_open=settings.signup, mail_available=settings.mail_available)


def session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle_timeout=settings.idle_timeout,
        absolute_timeout=settings.absolute_timeout,
        ticket_ttl=settings.ticket_ttl,
        data_max_bytes=settings.session_data_max_bytes,
    )


@dataclass
class Runtime:
    engine: AsyncEngine
    uow: SqlUnitOfWorkFactory
    events: InProcessEventBus
    hasher: PasswordHasher
    service: AuthService

    listen_url: str | None = None
    """Where this process listens for broadcasts (PostgreSQL), if it listens itself."""
    checkpoints_in_background: bool = False
    """SQLite, serving: no commit checkpoints the WAL; ``checkpoints()`` must run."""

    def checkpoints(self) -> Coroutine[Any, Any, None] | None:
        """The task that checkpoints a serving SQLite database's WAL (no commit does);
        None where nothing needs it."""
        if not self.checkpoints_in_background:
            return None
        return keep_checkpointing(self.engine)

    def change_feed(self, target: ChangeFeedTarget) -> Coroutine[Any, Any, None] | None:
        """A task that tells ``target`` when anyone committed a broadcast, for databases
        that can tell (PostgreSQL); None where polling is all there is."""
        if self.listen_url is None:
            return None
        from .db.notify import PostgresNotifications

        return PostgresNotifications(self.listen_url, target).run()

    async def close(self) -> None:
        # Let transactions that are under way finish (a closing websocket does not abort
        # them), then close the connections.
        await self.uow.drain(within=5.0)
        self.hasher.close()
        await self.engine.dispose()


async def start_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    hasher_factory: HasherFactory | None = None,
    bulk: bool = False,
    serving: bool = False,
    permissions: PermissionRegistry | None = None,
) -> Runtime:
    """Open the database (refusing an unmigrated one) and build the service.

    ``bulk``: for a one-off maintenance process (``purge-expired``), not for serving.
    ``serving``: for a server, which runs ``Runtime.checkpoints()`` beside its requests.
    ``permissions``: what the app declared (default: the built-in ``authdemo:admin``).
    """
    background = serving and is_sqlite(settings.database_url)
    engine = create_engine(
        settings.database_url,
        timeout=settings.db_timeout.total_seconds(),
        bulk=bulk,
        background_checkpoints=background,
        pool=settings.db_pool,
        pooler=settings.behind_pooler,
    )
    try:
        await check_schema(engine)
        uow = SqlUnitOfWorkFactory(engine, timeout=settings.db_timeout.total_seconds())
        key = await ensure_token_key(uow, settings.secret_key)
    except BaseException:
        await engine.dispose()
        raise
    hasher = (hasher_factory or default_hasher)(settings)
    events = InProcessEventBus()
    cache = SessionCache(settings.session_cache_ttl.total_seconds())
    events.subscribe_all(cache.invalidate)
    service = AuthService(
        uow=uow,
        hasher=hasher,
        tokens=TokenCodec(key),
        clock=clock or SystemClock(),
        policy=session_policy(settings),
        events=events,
        throttle=throttle_policy(settings),
        cache=cache,
        audit_retention=settings.audit_retention,
        mfa_box=SecretBox(settings.mfa_keys) if settings.mfa_keys else None,
        permissions=permissions,
        email=email_policy(settings),
    )
    listen = settings.listener_url if engine.dialect.name == "postgresql" else None
    return Runtime(engine, uow, events, hasher, service, listen, background)


def mail_sender(
    settings: Settings, rt: Runtime, *, clock: Clock | None = None
) -> MailSender | None:
    """This worker's outbox sender: to ``AUTHDEMO_SMTP_URL``, or the console on the demo
    path; None when mail cannot go anywhere (sign-up and reset are then unavailable).
    Mails the service writes in this process wake it at once."""
    from .service.outbox import MailSender
    from .smtp import ConsoleTransport, SmtpTransport

    target = settings.smtp_target()
    if target is not None:
        transport: ConsoleTransport | SmtpTransport = SmtpTransport(target)
    elif settings.mail_console:
        transport = ConsoleTransport()
    else:
        return None
    sender = MailSender(rt.uow, transport, mail_from(settings), clock or SystemClock())
    rt.service.mail_hook = sender.wake
    return sender


def mail_from(settings: Settings) -> str:
    """``AUTHDEMO_MAIL_FROM``, else ``authdemo@`` the SMTP host (``authdemo@localhost``)."""
    if settings.mail_from:
        return settings.mail_from
    target = settings.smtp_target()
    return f"authdemo@{target.host if target is not None else 'localhost'}"


def describe_mail(settings: Settings) -> str:
    """The start-up line about mail: where it goes, or what is unavailable without it."""
    target = settings.smtp_target()
    if target is not None:
        return f"mail: sending through {target.shown} as {mail_from(settings)}"
    if settings.mail_console:
        return "mail: AUTHDEMO_SMTP_URL is not set, so mails are printed here (demo only)"
    return (
        "mail: AUTHDEMO_SMTP_URL is not set, so sign-up and password reset by e-mail "
        "are unavailable"
    )


async def check_database(settings: Settings) -> None:
    """Refuse, as :func:`start_runtime` would, a database that is missing, unreachable or
    not migrated (``SchemaNotReady``), without building anything else."""
    engine = create_engine(settings.database_url, pool=None, pooler=settings.behind_pooler)
    try:
        await check_schema(engine)
    finally:
        await engine.dispose()


def describe_database(settings: Settings) -> str:
    """``database <URL, password hidden>, <where the URL came from>``, for messages."""
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    return f"database {shown}, {settings.database_url_source()}"


@asynccontextmanager
async def runtime(settings: Settings, **kwargs: object) -> AsyncIterator[Runtime]:
    rt = await start_runtime(settings, **kwargs)  # type: ignore[arg-type]
    try:
        yield rt
    finally:
        await rt.close()
