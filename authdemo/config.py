"""Settings, read once from ``AUTHDEMO_*`` environment variables."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from .smtp import SmtpTarget

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///authdemo.db"
DEFAULT_POOL = -1
"""``Settings.db_pool``: SQLAlchemy's default pool (5 connections, 10 more in a burst)."""

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def parse_duration(name: str, raw: str) -> timedelta:
    """Parse ``90``, ``90s``, ``30m``, ``12h``, ``2d`` or ``500ms`` into a timedelta."""
    match = _DURATION.fullmatch(raw)
    if not match:
        raise ConfigError(f"{name}={raw!r} is not a duration (examples: 1800, 30m, 12h)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{name} must be greater than zero")
    return timedelta(seconds=seconds)


def normalize_database_url(url: str) -> str:
    """Pick the async driver for plain ``sqlite://`` and ``postgresql://`` URLs."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def ipaddress_networks(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip()]


def _origin(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.fullmatch(r"^https?://[^/\s]+$", value):
        raise ConfigError(f"{name}: {raw!r} is not an origin like https://example.com:8443")
    return value.lower()


_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


def host_pattern(name: str, raw: str) -> str:
    """One entry of ``AUTHDEMO_ALLOWED_HOSTS``, as Django's ``ALLOWED_HOSTS`` spells them:
    a host name (``app.example.com``), a domain and all its subdomains
    (``.example.com``), or an IP address (``192.0.2.10``, ``[2001:db8::1]``). Lower case,
    without a trailing dot; IPv6 addresses compressed and without brackets."""
    value = raw.strip().lower()
    example = "examples: app.example.com, .example.com, 192.0.2.10, [2001:db8::1]"
    if "://" in value or "/" in value:
        raise ConfigError(
            f"{name}: {raw.strip()!r} is a URL or a path; list host names ({example})"
        )
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if ":" in value:
        try:
            return ipaddress.IPv6Address(value).compressed
        except ValueError:
            raise ConfigError(
                f"{name}: {raw.strip()!r} has a port or is not an address; list host names "
                f"without ports (every port of a listed host is allowed; {example})"
            ) from None
    subdomains = value.startswith(".")
    bare = value.removeprefix(".").removesuffix(".")
    if not bare.isascii():  # browsers send international names as punycode (xn--…)
        try:
            bare = bare.encode("idna").decode("ascii")
        except UnicodeError:
            raise ConfigError(f"{name}: {raw.strip()!r} is not a host name ({example})") from None
    if not bare or len(bare) > 253 or not _HOST_NAME.fullmatch(bare):
        raise ConfigError(f"{name}: {raw.strip()!r} is not a host name ({example})")
    return ("." if subdomains else "") + bare


def db_pool(raw: str | None) -> int | None:
    """``AUTHDEMO_DB_POOL``: unset for SQLAlchemy's default, ``null`` for ``NullPool``
    (behind PgBouncer), or the number of connections each worker keeps."""
    if raw is None:
        return DEFAULT_POOL
    if raw.strip().lower() == "null":
        return None
    try:
        size = int(raw)
    except ValueError:
        raise ConfigError(
            f"AUTHDEMO_DB_POOL={raw!r} is neither null nor a number of connections"
        ) from None
    if size < 1:
        raise ConfigError("AUTHDEMO_DB_POOL must be null or at least 1")
    return size


# --- page and cookie knobs -------------------------------------------------------------

DEFAULT_COOKIE_NAME = "__Host-authdemo_session"
COOKIE_PREFIX = "__Host-"
# RFC 9110 token characters: a cookie name may hold nothing else.
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def cookie_name(name: str, raw: str) -> str:
    """The session cookie's name, ``__Host-`` prefixed: ``myapp_session`` becomes
    ``__Host-myapp_session``; a name that already carries the prefix stays as it is.

    The prefix makes browsers refuse the cookie unless it is Secure, has ``Path=/`` and
    no ``Domain``, so no subdomain and no plain-http page can plant or overwrite it."""
    value = raw.strip()
    lowered = value.lower()
    if lowered.startswith("__secure-"):
        raise ConfigError(
            f"{name}: {raw!r} uses the __Secure- prefix; authdemo's cookie is always "
            f"{COOKIE_PREFIX}-prefixed (give the name without a prefix)"
        )
    if lowered.startswith(COOKIE_PREFIX.lower()) and not value.startswith(COOKIE_PREFIX):
        raise ConfigError(f"{name}: write the prefix as {COOKIE_PREFIX!r}, not {raw[:7]!r}")
    if not value.startswith(COOKIE_PREFIX):
        value = COOKIE_PREFIX + value
    check_cookie_name(name, value)
    return value


def check_cookie_name(name: str, value: str) -> None:
    bare = value.removeprefix(COOKIE_PREFIX)
    if not value.startswith(COOKIE_PREFIX) or not bare:
        raise ConfigError(f"{name}: {value!r} must be {COOKIE_PREFIX!r} followed by a name")
    if len(value) > 128 or not _TOKEN.fullmatch(bare):
        raise ConfigError(
            f"{name}: {value!r} is not a cookie name (letters, digits and "
            "!#$%&'*+-.^_`|~ only, at most 128 characters)"
        )


def check_page_title(name: str, value: str) -> None:
    if not value.strip() or len(value) > 200 or _CONTROL.search(value):
        raise ConfigError(
            f"{name}: the page title must be 1 to 200 characters without control characters"
        )


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1 or 0)")


# Directives an app may add sources to. The rest of authdemo's policy ('none' for
# object-src, base-uri and frame-ancestors) is not extendable: it guards the page itself.
CSP_EXTENDABLE = (
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "connect-src",
    "font-src",
    "media-src",
    "frame-src",
    "worker-src",
    "manifest-src",
    "form-action",
)
_CSP_FIXED = ("object-src", "base-uri", "frame-ancestors")
# Directives that decide what code the page may run or embed: a source there names hosts
# (``https://cdn.example.com``, or a family of them, ``https://*.example.com``), never
# "any host", "any port" or "anything of a scheme". object-src is fixed at 'none', and
# says so naming the source too.
_CSP_NAMED_HOSTS_ONLY = ("default-src", "script-src", "object-src")
_SCHEME_SOURCE = re.compile(r"^[a-z][a-z0-9+.-]*:$", re.IGNORECASE)
_HOST_SOURCE = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?"  # scheme
    r"(?P<host>\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])"  # host
    r"(?::(?P<port>[0-9]{1,5}|\*))?"  # port
    r"(?:/[A-Za-z0-9\-._~%!$&()*+=:@/]*)?$",  # path: no ; , ' " or spaces
    re.IGNORECASE,
)
_HASH_SOURCE = re.compile(r"^'sha(?:256|384|512)-[A-Za-z0-9+/]+={0,2}'$")
_SCRIPT_REFUSED = {
    "'unsafe-inline'": "would run any script injected into the page",
    "'unsafe-eval'": "would let scripts turn strings into code",
}
_SCHEME_REASONS = {
    "data:": "would run code written into data: URLs",
    "blob:": "would run code built in the page",
}


def csp_extra(name: str, raw: str) -> dict[str, tuple[str, ...]]:
    """``img-src https://cdn.example; font-src https://fonts.example`` → directive →
    sources, validated: known directives only, well-formed sources only (no quotes but
    the keywords, no ``;``, ``,`` or line breaks), nothing that lets scripts run from
    markup (``'unsafe-inline'``/``'unsafe-eval'`` in script-src), and in default-src and
    script-src named hosts only (``_widening``)."""
    if _CONTROL.search(raw):
        raise ConfigError(f"{name}: line breaks and control characters are not allowed")
    extra: dict[str, tuple[str, ...]] = {}
    for part in raw.split(";"):
        words = part.split()
        if not words:
            continue
        directive, sources = words[0].lower(), words[1:]
        if directive in _CSP_FIXED:
            for source in sources:
                _refuse_widening(name, directive, source)
            raise ConfigError(
                f"{name}: {directive} cannot be extended (authdemo keeps it at 'none')"
                + (f"; refused: {' '.join(sources)}" if sources else "")
            )
        if directive not in CSP_EXTENDABLE:
            raise ConfigError(
                f"{name}: unknown directive {words[0]!r} (extendable: {', '.join(CSP_EXTENDABLE)})"
            )
        if not sources:
            raise ConfigError(f"{name}: {directive} lists no source")
        for source in sources:
            csp_source(name, directive, source)
        merged = extra.get(directive, ())
        extra[directive] = merged + tuple(s for s in sources if s not in merged)
    return extra


def csp_source(name: str, directive: str, source: str) -> None:
    lowered = source.lower()
    if directive == "script-src" and lowered in _SCRIPT_REFUSED:
        raise ConfigError(
            f"{name}: {source} in script-src {_SCRIPT_REFUSED[lowered]}; authdemo's page "
            "needs none of that (serve scripts from a host you list instead)"
        )
    if source.startswith("'"):
        if lowered == "'self'" or _HASH_SOURCE.match(source):
            return
        if lowered == "'unsafe-inline'" and directive == "style-src":
            return  # e.g. for html.style elements; styles cannot run code
        raise ConfigError(
            f"{name}: {source} is not allowed in {directive} (quoted keywords: 'self', "
            "'sha256-…' hashes, and 'unsafe-inline' in style-src only)"
        )
    _refuse_widening(name, directive, source)
    if _SCHEME_SOURCE.match(source) or _HOST_SOURCE.match(source):
        return
    raise ConfigError(
        f"{name}: {source!r} in {directive} is not a CSP source (examples: "
        "https://cdn.example.com, *.example.com, https:, data:)"
    )


def _refuse_widening(name: str, directive: str, source: str) -> None:
    """In default-src, script-src and object-src, refuse (naming directive and source)
    a source that reaches beyond named hosts (``_widening``)."""
    if directive in _CSP_NAMED_HOSTS_ONLY and (reason := _widening(source)) is not None:
        raise ConfigError(
            f"{name}: {source} in {directive} {reason}; name the hosts instead "
            "(https://cdn.example.com, https://*.example.com)"
        )


def _widening(source: str) -> str | None:
    """How an unquoted ``source`` reaches beyond named hosts, or None when it names
    hosts (any case): ``*`` as the host however spelled (``*``, ``*/``, ``https://*``,
    ``*:*``), a wildcard over a whole top-level domain (``*.com``), a scheme alone
    (``https:``, ``data:``, ``blob:``, any ``scheme:``) or any port (``host:*``).
    ``*.example.com`` is a family of named hosts: allowed."""
    lowered = source.lower()
    if _SCHEME_SOURCE.match(source):
        return _SCHEME_REASONS.get(lowered, f"allows every {lowered[:-1]} URL, from any host")
    found = _HOST_SOURCE.match(source)
    if found is None:
        return None  # not a host source at all: the caller says so
    host, port = found.group("host"), found.group("port")
    if host == "*":
        return "allows any host"
    if host.startswith("*.") and "." not in host[2:]:
        return f"allows every host under .{host[2:].lower()}"
    if port == "*":
        return "allows any port"
    return None


@functools.cache
def _settings_types() -> dict[str, Any]:
    return get_type_hints(Settings)


_EXAMPLES = {
    timedelta: "timedelta(minutes=10)",
    str: "'text'",
    int: "5",
    bool: "True",
    bytes: "b'...'",
}


def check_type(name: str, value: object, expected: Any) -> None:
    """Raise ConfigError, naming the field, when ``value`` is not of type ``expected``
    (the types Settings' fields use: classes, ``X | None``, ``tuple[X, ...]``,
    ``Literal``). A bool is not taken for an int."""
    if _matches(value, expected):
        return
    example = _EXAMPLES.get(expected)
    hint = f" (e.g. {name}={example})" if example else ""
    raise ConfigError(
        f"Settings({name}={value!r}): {name} must be {_describe(expected)}, "
        f"not {type(value).__name__}{hint}"
    )


def _describe(expected: Any) -> str:
    origin = get_origin(expected)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(expected))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in get_args(expected))
    if origin is tuple:
        return f"a tuple of {get_args(expected)[0].__name__}"
    if expected is type(None):
        return "None"
    name = str(expected.__name__)
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _matches(value: object, expected: Any) -> bool:
    origin = get_origin(expected)
    if origin is Literal:
        return value in get_args(expected)
    if origin in (Union, types.UnionType):
        return any(_matches(value, option) for option in get_args(expected))
    if origin is tuple:
        item = get_args(expected)[0]
        return isinstance(value, tuple) and all(_matches(v, item) for v in value)
    if expected is type(None):
        return value is None
    if expected is int and isinstance(value, bool):
        return False
    return isinstance(value, expected)


UiName = Literal["idom", "reactpy"]
UI_NAMES: tuple[UiName, ...] = ("idom", "reactpy")


def signup_mode(name: str, raw: str) -> bool:
    """``open`` (anyone may sign up) or ``closed`` (only operators make accounts)."""
    value = raw.strip().lower()
    if value in ("open", "closed"):
        return value == "open"
    raise ConfigError(f"{name}={raw!r}: use open or closed")


def ui_name(name: str, raw: str) -> UiName:
    """``idom`` or ``reactpy`` (any case, spaces ignored)."""
    value = raw.strip().lower()
    for known in UI_NAMES:
        if value == known:
            return known
    raise ConfigError(f"{name}={raw!r}: use one of {', '.join(UI_NAMES)}")


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost; the defaults are OWASP's minimum (m=19456 KiB, t=2, p=1)."""

    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


@dataclass(frozen=True)
class Settings:
    """Every setting, validated when built (a wrong type raises ``ConfigError`` naming the
    field). ``Settings.from_env()`` reads the ``AUTHDEMO_*`` variables; a field left out
    here has its default, not the variable's value. The settings reference lists them all.
    """

    database_url: str = DEFAULT_DATABASE_URL
    listen_url: str | None = None
    """Where the host's PostgreSQL listener connects (None: the database URL). Set it to
    PostgreSQL itself when the database URL is a pooler (PgBouncer cannot carry LISTEN);
    a listen URL other than the database URL also tells authdemo that its queries go
    through a transaction pooler (no server-side prepared statement is kept)."""
    db_pool: int | None = DEFAULT_POOL
    """Connections each worker's pool keeps: None is SQLAlchemy's ``NullPool`` (a
    connection per unit of work, for PgBouncer); ``DEFAULT_POOL`` is SQLAlchemy's default
    (5, and 10 more in a burst); a size N is N and no more."""
    idle_timeout: timedelta = timedelta(minutes=30)
    absolute_timeout: timedelta = timedelta(hours=12)
    ticket_ttl: timedelta = timedelta(seconds=30)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    """Host names requests may be addressed to (``host_pattern``); empty: any host."""
    trusted_proxies: str = ""
    """Comma-separated addresses/networks whose X-Forwarded-For/-Proto we believe."""
    secret_key: bytes | None = None
    argon2: Argon2Params = field(default_factory=Argon2Params)
    login_workers: int = 0
    """Threads that hash passwords; 0 means one per CPU core."""
    db_timeout: timedelta = timedelta(seconds=5)
    """How long a request waits for the database (pool, locks) before failing closed."""
    broadcast_poll: timedelta = timedelta(milliseconds=250)
    """How often each worker reads session events written by other processes."""
    broadcast_poll_listening: timedelta = timedelta(seconds=5)
    """How often while the host's PostgreSQL listener is connected (it wakes the workers
    at each commit, and they read everything new when it connects again)."""
    ws_ping_interval: timedelta = timedelta(seconds=20)
    ws_ping_timeout: timedelta = timedelta(seconds=20)
    ws_per_address: int = 50
    """Open websockets one client address may hold (per worker); more are refused (429)."""
    ws_events_per_second: int = 20
    """Sustained UI events a connection may send; bursts of twice that are allowed."""
    session_cache_ttl: timedelta = timedelta(seconds=10)
    """How long a worker may answer a returning cookie from memory (0 turns the cache off);
    any change to the session (revocation, rotation, data) drops the entry at once."""
    session_data_max_bytes: int = 64 * 1024
    """Largest session data (``use_session()``), as compact JSON."""
    throttle_account_failures: int = 5
    throttle_address_failures: int = 20
    throttle_max_block: timedelta = timedelta(minutes=15)
    audit_retention: timedelta = timedelta(days=90)
    """How long ``purge-expired`` keeps audit rows."""
    csp_extra: str = ""
    """Sources added to the page's Content-Security-Policy, per directive, in CSP syntax:
    ``img-src https://cdn.example; font-src https://fonts.example`` (see ``csp_extra``)."""
    page_title: str = "authdemo"
    """The page's ``<title>`` (HTML-escaped)."""
    stylesheet: bool = True
    """Whether the page loads authdemo's own ``app.css``."""
    cookie_name: str = DEFAULT_COOKIE_NAME
    """The session cookie's name, always ``__Host-`` prefixed (see ``cookie_name``)."""
    ui: UiName = "idom"
    """The UI library the pages and websockets run on: ``idom`` or ``reactpy`` (which
    needs ``pip install 'authdemo[reactpy]'``). ``authdemo.reactpy.create_app`` sets it."""
    mfa_keys: tuple[bytes, ...] = ()
    """``AUTHDEMO_MFA_KEY``: the key that seals two-factor secrets first, then older ones
    that still open them (a rotation). Empty: two-factor sign-in cannot be turned on."""
    signup: bool = False
    """``AUTHDEMO_SIGNUP=open``: visitors may make accounts (with a verified address)."""
    smtp_url: str | None = None
    """``AUTHDEMO_SMTP_URL``: where mail goes (``authdemo.smtp``); None: no SMTP."""
    mail_from: str = ""
    """``AUTHDEMO_MAIL_FROM``: the From of every mail (default ``authdemo@`` the SMTP host)."""
    mail_console: bool = False
    """Without SMTP, write mails to the console (the demo's ``authdemo run`` sets it):
    never on a real deployment."""

    def __post_init__(self) -> None:
        # Built in code, a field of the wrong type would fail later, far from its cause
        # (a raw TypeError when the server starts): say which field, at construction.
        for item in fields(self):
            check_type(item.name, getattr(self, item.name), _settings_types()[item.name])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of the ``AUTHDEMO_*`` variables in ``env`` (default: the
        environment); unset or empty ones keep their defaults. Raises ``ConfigError``
        naming the variable whose value cannot be used."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def duration(name: str, default: timedelta) -> timedelta:
            raw = get(name)
            return default if raw is None else parse_duration(name, raw)

        def integer(name: str, default: int, minimum: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not an integer") from None
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}")
            return value

        def size(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            match = re.fullmatch(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib)?\s*$", raw, re.IGNORECASE)
            if not match or int(match.group(1)) <= 0:
                raise ConfigError(f"{name}={raw!r} is not a size (examples: 65536, 64KiB, 1MiB)")
            unit = (match.group(2) or "b").lower()[:1]
            return int(match.group(1)) * {"b": 1, "k": 1024, "m": 1024 * 1024}[unit]

        def cache_ttl() -> timedelta:
            raw = get("AUTHDEMO_SESSION_CACHE_TTL")
            if raw is not None and raw.strip() == "0":
                return timedelta(0)
            return duration("AUTHDEMO_SESSION_CACHE_TTL", timedelta(seconds=10))

        defaults = cls()
        secret = get("AUTHDEMO_SECRET_KEY")
        if secret is not None and len(secret) < 32:
            raise ConfigError("AUTHDEMO_SECRET_KEY must be at least 32 characters long")
        origins = tuple(
            _origin("AUTHDEMO_ALLOWED_ORIGINS", part)
            for part in (get("AUTHDEMO_ALLOWED_ORIGINS") or "").split(",")
            if part.strip()
        )
        hosts_raw = get("AUTHDEMO_ALLOWED_HOSTS")
        hosts = tuple(
            host_pattern("AUTHDEMO_ALLOWED_HOSTS", part)
            for part in (hosts_raw or "").split(",")
            if part.strip()
        )
        if hosts_raw is not None and not hosts:
            raise ConfigError("AUTHDEMO_ALLOWED_HOSTS lists no host (leave it unset for any)")
        proxies = get("AUTHDEMO_TRUSTED_PROXIES") or ""
        try:
            ipaddress_networks(proxies)
        except ValueError as error:
            raise ConfigError(f"AUTHDEMO_TRUSTED_PROXIES: {error}") from None
        listen = get("AUTHDEMO_LISTEN_URL")
        from .mfa import WeakMfaKey, parse_mfa_keys  # cryptography: only when reading settings

        mfa_raw = get("AUTHDEMO_MFA_KEY")
        try:
            mfa_keys = parse_mfa_keys(mfa_raw) if mfa_raw is not None else ()
        except WeakMfaKey as error:
            raise ConfigError(str(error)) from None
        settings = cls(
            database_url=normalize_database_url(
                get("AUTHDEMO_DATABASE_URL") or DEFAULT_DATABASE_URL
            ),
            listen_url=normalize_database_url(listen) if listen is not None else None,
            db_pool=db_pool(get("AUTHDEMO_DB_POOL")),
            idle_timeout=duration("AUTHDEMO_IDLE_TIMEOUT", defaults.idle_timeout),
            absolute_timeout=duration("AUTHDEMO_ABSOLUTE_TIMEOUT", defaults.absolute_timeout),
            ticket_ttl=duration("AUTHDEMO_TICKET_TTL", defaults.ticket_ttl),
            allowed_origins=origins,
            allowed_hosts=hosts,
            trusted_proxies=proxies,
            secret_key=secret.encode() if secret is not None else None,
            argon2=Argon2Params(
                memory_kib=integer("AUTHDEMO_ARGON2_MEMORY_KIB", 19456, 19456),
                time_cost=integer("AUTHDEMO_ARGON2_TIME_COST", 2, 2),
                parallelism=integer("AUTHDEMO_ARGON2_PARALLELISM", 1, 1),
            ),
            login_workers=integer("AUTHDEMO_LOGIN_WORKERS", 0, 0),
            db_timeout=duration("AUTHDEMO_DB_TIMEOUT", defaults.db_timeout),
            broadcast_poll=duration("AUTHDEMO_BROADCAST_POLL", defaults.broadcast_poll),
            broadcast_poll_listening=duration(
                "AUTHDEMO_BROADCAST_POLL_LISTENING", defaults.broadcast_poll_listening
            ),
            ws_ping_interval=duration("AUTHDEMO_WS_PING_INTERVAL", defaults.ws_ping_interval),
            ws_ping_timeout=duration("AUTHDEMO_WS_PING_TIMEOUT", defaults.ws_ping_timeout),
            ws_events_per_second=integer("AUTHDEMO_WS_EVENTS_PER_SECOND", 20, 1),
            ws_per_address=integer("AUTHDEMO_WS_PER_ADDRESS", 50, 1),
            session_data_max_bytes=size("AUTHDEMO_SESSION_DATA_MAX", 64 * 1024),
            session_cache_ttl=cache_ttl(),
            throttle_account_failures=integer("AUTHDEMO_THROTTLE_ACCOUNT_FAILURES", 5, 1),
            throttle_address_failures=integer("AUTHDEMO_THROTTLE_ADDRESS_FAILURES", 20, 1),
            throttle_max_block=duration("AUTHDEMO_THROTTLE_MAX_BLOCK", defaults.throttle_max_block),
            audit_retention=duration("AUTHDEMO_AUDIT_RETENTION", defaults.audit_retention),
            csp_extra=get("AUTHDEMO_CSP_EXTRA") or "",
            page_title=env.get("AUTHDEMO_PAGE_TITLE") or defaults.page_title,
            stylesheet=boolean("AUTHDEMO_STYLESHEET", get("AUTHDEMO_STYLESHEET") or "1"),
            cookie_name=cookie_name(
                "AUTHDEMO_COOKIE_NAME", get("AUTHDEMO_COOKIE_NAME") or defaults.cookie_name
            ),
            ui=ui_name("AUTHDEMO_UI", get("AUTHDEMO_UI") or defaults.ui),
            mfa_keys=mfa_keys,
            signup=signup_mode("AUTHDEMO_SIGNUP", get("AUTHDEMO_SIGNUP") or "closed"),
            smtp_url=get("AUTHDEMO_SMTP_URL"),
            mail_from=get("AUTHDEMO_MAIL_FROM") or "",
        )
        settings.validate()
        return settings

    @property
    def listener_url(self) -> str:
        """Where the PostgreSQL listener connects: ``AUTHDEMO_LISTEN_URL`` or the database."""
        return self.listen_url or self.database_url

    @property
    def behind_pooler(self) -> bool:
        """Queries go through a transaction pooler (a listen URL of its own says so)."""
        return self.listen_url is not None and self.listen_url != self.database_url

    def database_url_source(self, env: Mapping[str, str] | None = None) -> str:
        """Where ``database_url`` came from, for a message about it: the variable, the
        default (the variable unset), or the code that built these settings."""
        raw = (os.environ if env is None else env).get("AUTHDEMO_DATABASE_URL") or None
        if raw is not None and normalize_database_url(raw) == self.database_url:
            return "from AUTHDEMO_DATABASE_URL"
        if raw is None and self.database_url == DEFAULT_DATABASE_URL:
            return "the default: AUTHDEMO_DATABASE_URL is not set"
        return "as given to Settings(database_url=...)"

    @property
    def migration_url(self) -> str:
        """Where migrations run: the database, or past the pooler (its direct URL) when
        queries go through one (DDL and advisory locks need a session of their own)."""
        return self.listener_url if self.behind_pooler else self.database_url

    def validate(self) -> None:
        if self.idle_timeout > self.absolute_timeout:
            raise ConfigError(
                "AUTHDEMO_IDLE_TIMEOUT must not be longer than AUTHDEMO_ABSOLUTE_TIMEOUT"
            )
        if self.ticket_ttl > timedelta(seconds=30):
            raise ConfigError("AUTHDEMO_TICKET_TTL must be 30 seconds or less")
        if self.broadcast_poll > timedelta(milliseconds=250):
            raise ConfigError("AUTHDEMO_BROADCAST_POLL must be 250ms or less")
        if self.broadcast_poll_listening < self.broadcast_poll:
            raise ConfigError(
                "AUTHDEMO_BROADCAST_POLL_LISTENING must not be shorter than AUTHDEMO_BROADCAST_POLL"
            )
        if self.listen_url is not None and not self.listen_url.startswith("postgresql"):
            raise ConfigError("AUTHDEMO_LISTEN_URL must be a postgresql:// URL")
        if self.audit_retention < timedelta(days=1):  # "90" is 90 seconds, not 90 days
            raise ConfigError(
                "AUTHDEMO_AUDIT_RETENTION must be at least 1d (a bare number means seconds)"
            )
        self.csp_sources()
        check_page_title("AUTHDEMO_PAGE_TITLE", self.page_title)
        check_cookie_name("AUTHDEMO_COOKIE_NAME", self.cookie_name)
        ui_name("AUTHDEMO_UI", self.ui)
        self.smtp_target()
        if self.mail_from:
            from .mail import InvalidEmail, sender_address

            try:
                sender_address(self.mail_from)
            except InvalidEmail as error:
                raise ConfigError(f"AUTHDEMO_MAIL_FROM: {error}") from None

    def smtp_target(self) -> SmtpTarget | None:
        """``smtp_url`` parsed (raises ConfigError), None when no SMTP is set."""
        if self.smtp_url is None:
            return None
        from .smtp import parse_smtp_url

        return parse_smtp_url("AUTHDEMO_SMTP_URL", self.smtp_url)

    @property
    def mail_available(self) -> bool:
        """Mail can go out: by SMTP, or to the console (the demo)."""
        return self.smtp_url is not None or self.mail_console

    def csp_sources(self) -> dict[str, tuple[str, ...]]:
        """``csp_extra``, parsed and validated (raises ConfigError)."""
        return csp_extra("AUTHDEMO_CSP_EXTRA", self.csp_extra)
