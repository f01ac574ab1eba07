"""ORM tables. Alembic migrations are built from (and checked against) this metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so that migrations (and SQLite batch mode) can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite stores naive text; we store UTC there and re-attach UTC when reading, so
    the rest of the code only ever sees aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    __tablename__ = "authdemo_users"
    __table_args__ = (
        # An index, not a constraint: SQLite adds it without rebuilding the table.
        Index("ix_authdemo_users_email_key", "email_key", unique=True),
        Index("ix_authdemo_users_signup_expires_at", "signup_expires_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    """Display form (NFKC)."""
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    """NFKC + casefold: what uniqueness and lookups use."""
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    credential_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by every password change, disable and "end all sessions": a session may act
    only while it carries the current value."""
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    """The address as given (domain lower-cased); None: the account has none."""
    email_key: Mapped[str | None] = mapped_column(String(254), nullable=True)
    """The address case-folded whole: what uniqueness and look-ups use."""
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signup_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """Set on an account made by sign-up until its address is verified: it cannot sign
    in meanwhile, and ``purge-expired`` deletes it once this time has passed."""


class SessionRow(Base):
    __tablename__ = "authdemo_sessions"
    __table_args__ = (
        Index("ix_authdemo_sessions_user_id", "user_id"),
        Index("ix_authdemo_sessions_absolute_expires_at", "absolute_expires_at"),
        Index("ix_authdemo_sessions_idle_expires_at", "idle_expires_at"),  # purge-expired
        Index("ix_authdemo_sessions_signed_in_from", "signed_in_from"),  # ticket redemption
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 (hex) of the cookie token. The token itself is never stored."""
    user_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("authdemo_users.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idle_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The app's per-session values (``use_session()``); None until the first write."""
    user_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The user's ``credential_epoch`` when the session opened (or last rotated)."""
    signed_in_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Hash of the pre-sign-in cookie that the session's first cookie replaced (the
    sign-in ticket's bound cookie): the other tabs of that browser may follow it."""


class TicketRow(Base):
    """A single-use ticket that hands a session's new cookie to the browser."""

    __tablename__ = "authdemo_auth_tickets"
    __table_args__ = (Index("ix_authdemo_auth_tickets_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(
        Id, ForeignKey("authdemo_sessions.id", ondelete="CASCADE"), index=True
    )
    bound_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Hash of the cookie the browser held when the ticket was issued (None: it held none)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SecretRow(Base):
    """Deployment-wide secrets generated on first start (the token MAC key)."""

    __tablename__ = "authdemo_app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class AuditRow(Base):
    """The audit trail. Never a token, a ticket or a password."""

    __tablename__ = "authdemo_auth_events"
    __table_args__ = (
        Index("ix_authdemo_auth_events_at", "at"),
        Index("ix_authdemo_auth_events_user_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("authdemo_users.id", ondelete="SET NULL"), nullable=True
    )
    username: Mapped[str] = mapped_column(String(64), default="")
    """The user's name at the time (kept when the user row goes); for attempts on names
    that are no user's, ``unknown:`` and a keyed digest — never the text typed."""
    session: Mapped[str] = mapped_column(String(8), default="")
    """Short session id: the first 8 hex characters of the token hash."""
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")


class ThrottleRow(Base):
    """Failed sign-in attempts per account and per client address; survives restarts."""

    __tablename__ = "authdemo_login_throttle"
    __table_args__ = (Index("ix_authdemo_login_throttle_updated_at", "updated_at"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BroadcastRow(Base):
    """Session events for other processes and hosts (written with the change: an outbox)."""

    __tablename__ = "authdemo_session_broadcasts"
    __table_args__ = (
        Index("ix_authdemo_session_broadcasts_created_at", "created_at"),
        Index("ix_authdemo_session_broadcasts_txid", "txid"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    session_ids: Mapped[str] = mapped_column(Text)
    """JSON list of session ids."""
    reason: Mapped[str] = mapped_column(String(32), default="")
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    origin: Mapped[str] = mapped_column(String(32), default="", server_default="")
    """Which connection caused the event (it need not react to its own change)."""
    user_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    """Whose sessions the event changes (open session lists follow it); not a foreign
    key: the row outlives nothing and must not block deleting a user."""
    txid: Mapped[int | None] = mapped_column(Id, nullable=True)
    """PostgreSQL: the writing transaction's id (``pg_current_xact_id()``); the follower
    reads past the oldest running transaction only, so no row is skipped. SQLite: NULL."""


class MfaRow(Base):
    """A user's TOTP secret, sealed (AES-GCM, ``authdemo.mfa.SecretBox``): pending until
    its first code confirms it. At most one per user."""

    __tablename__ = "authdemo_user_mfa"

    user_id: Mapped[int] = mapped_column(
        Id,
        ForeignKey("authdemo_users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    sealed_secret: Mapped[str] = mapped_column(String(255))
    """``v1:<key id>:<base64(nonce || ciphertext)>``; unreadable without the key."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pending_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The latest time step a code was accepted for: only a later one is accepted next
    (``UPDATE … WHERE last_step < :step``), so each code works once."""


class RecoveryCodeRow(Base):
    """Single-use recovery codes, as keyed digests only."""

    __tablename__ = "authdemo_mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_digest"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("authdemo_users.id", ondelete="CASCADE"))
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChallengeRow(Base):
    """A correct password waiting for its code: bound to the cookie the browser held,
    and to the user's credential epoch; taken (deleted) by the one code that settles it."""

    __tablename__ = "authdemo_mfa_challenges"
    __table_args__ = (
        Index("ix_authdemo_mfa_challenges_expires_at", "expires_at"),
        Index("ix_authdemo_mfa_challenges_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("authdemo_users.id", ondelete="CASCADE"))
    user_epoch: Mapped[int] = mapped_column(Integer)
    bound_token_hash: Mapped[str] = mapped_column(String(64))
    carry_from: Mapped[int | None] = mapped_column(Id, nullable=True)
    """The anonymous session whose data moves over (not a key: it may be purged)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RoleRow(Base):
    """A named set of permission patterns (``authdemo_0009``); users hold roles."""

    __tablename__ = "authdemo_roles"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    """Lower-case letters, digits and ``. _ -`` (``domain.check_role_name``)."""
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RolePermissionRow(Base):
    """One permission pattern a role grants: a declared name, ``prefix:*`` or ``*``."""

    __tablename__ = "authdemo_role_permissions"

    role_id: Mapped[int] = mapped_column(
        Id, ForeignKey("authdemo_roles.id", ondelete="CASCADE"), primary_key=True
    )
    pattern: Mapped[str] = mapped_column(String(128), primary_key=True)


class UserRoleRow(Base):
    """A user holds a role. Deleting either deletes the holding."""

    __tablename__ = "authdemo_user_roles"
    __table_args__ = (Index("ix_authdemo_user_roles_role_id", "role_id"),)

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("authdemo_users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        Id, ForeignKey("authdemo_roles.id", ondelete="CASCADE"), primary_key=True
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EmailCodeRow(Base):
    """A code mailed to prove an address (sign-up, reset, change of address): a keyed
    digest only, short-lived, a few tries; one per user and purpose, so a new code
    replaces the old one. Spent by one conditional ``DELETE``."""

    __tablename__ = "authdemo_email_codes"
    __table_args__ = (
        UniqueConstraint("user_id", "purpose"),
        Index("ix_authdemo_email_codes_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("authdemo_users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    """``verify`` (sign-up), ``reset`` (password), ``change`` (a new address)."""
    email_key: Mapped[str] = mapped_column(String(254))
    """The address the code was sent to (for a change: the new one, set once redeemed)."""
    email: Mapped[str] = mapped_column(String(254))
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Wrong codes entered so far; the code is void at the limit."""


class RateLimitRow(Base):
    """Fixed-window counters shared by every worker and host (mails per address and per
    network, sign-ups per network): a row per key, counted by one conditional statement."""

    __tablename__ = "authdemo_rate_limits"
    __table_args__ = (Index("ix_authdemo_rate_limits_window_ends_at", "window_ends_at"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_ends_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MailRow(Base):
    """The mail outbox: a row written in the transaction that causes the mail; a sender
    claims it (``claimed_until``), delivers it and marks it sent, retrying with back-off."""

    __tablename__ = "authdemo_mail_outbox"
    __table_args__ = (
        Index("ix_authdemo_mail_outbox_due", "sent_at", "next_attempt_at"),
        Index("ix_authdemo_mail_outbox_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), default="")
    """What the mail is for (``signup``, ``reset``, …): for logs; never its content."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """A sender holds the row until then; another may take it over afterwards."""
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The holder's random claim id: only it may mark the row sent or failed."""
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(255), default="", server_default="")
