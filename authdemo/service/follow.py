"""Tabs of one browser follow a sign-in: the follow request, and whom it may carry.

When a ticket is redeemed, the cookie it was bound to is retired (``TOKEN_RETIRED``).
The other open views that knew the browser by that cookie ask the browser which cookie
it holds now: each renders a hidden image to ``/_auth/follow/<nonce>``, its nonce held
in that view's memory and page only. The image request carries the browser's current
cookie; ``follow`` publishes what it leads to (through the outbox, so the view may be
on any worker or host), and the view joins the signed-in session only if
``followed_session`` agrees.

Invariants:
- Following is proven, never assumed: a view joins a signed-in session only through a
  request that carries that session's current cookie (what only the browser holding it
  can send), answering a nonce only that view's page knows.
- Nothing the pre-sign-in cookie alone can do carries a view into the session: a view
  that knew the browser by cookie K joins session S only if S's first cookie was handed
  out by a ticket bound to K (``AuthSession.signed_in_from``), S may act, and the
  cookie presented is S's current one. A copy of K held open outside the browser hears
  the same retirement and renders the same kind of image, but nobody loads it with the
  browser's cookie (cross-site loads are refused), so it stays signed out.
- A follow request costs at most one broadcast row: only a cookie minted within the
  ticket lifetime counts (a follow answers a rotation that just happened), each nonce
  once per process, at most ``FOLLOWS_PER_COOKIE`` per cookie per process.
"""

from __future__ import annotations

import logging

from ..domain import SignedIn, may_act
from ..events import EventKind, SessionEvent, follow_key, publish_quietly
from .sessions import Sessions

log = logging.getLogger("authdemo.auth")

FOLLOWS_PER_COOKIE = 64
"""Follow requests one fresh cookie may publish, per process (one per open tab)."""
_REMEMBERED = 10_000


class Following(Sessions):
    async def follow(self, nonce: str, token: str | None) -> bool:
        """A view's follow image was loaded with the cookie ``token``: tell that view
        (``follow_key(nonce)``, wherever it is) which cookie the browser holds and which
        signed-in session, if any, it leads to. False when nothing was published (no
        fresh valid cookie, a nonce answered already, too many follows for it)."""
        now = self.now()
        recognised = self._recognise(token, now)
        if recognised is None or now - recognised[1] > self.policy.ticket_ttl:
            return False
        key = follow_key(nonce)
        keys, counts = self._follow_keys, self._follows_by_cookie
        if key in keys:
            return False
        resolution = await self._resolve(token, now)
        token_hash = resolution.token_hash
        if token_hash is None:
            return False
        count = counts.get(token_hash, 0)
        if count >= FOLLOWS_PER_COOKIE:
            log.warning("follow refused: too many for one cookie")
            return False
        counts[token_hash] = count + 1
        keys[key] = None
        for memory in (keys, counts):
            while len(memory) > _REMEMBERED:
                memory.popitem(last=False)
        session = resolution.signed_in.session if resolution.signed_in else None
        event = SessionEvent(
            EventKind.FOLLOWED,
            (session.id,) if session is not None else (),
            token_hash=token_hash,
            origin=key,
        )
        async with self._uow(write=True) as tx:
            event = await self._broadcast(tx, event, now)
            await tx.commit()
        await publish_quietly(self._events, event)
        return True

    async def followed_session(
        self, session_id: int, token_hash: str, known_hash: str
    ) -> SignedIn | None:
        """The signed-in session a view that knew the browser by the cookie
        ``known_hash`` may join, now that the browser presented ``token_hash`` on its
        follow: only if that is the session's current cookie, the session may act, and
        its first cookie replaced ``known_hash`` (the sign-in was this browser's). Else
        None. Always reads the database."""
        async with self._uow(one_statement=True) as tx:
            found = await tx.sessions.get_with_user(session_id)
        if found is None:
            return None
        session, user = found
        if user is None or not may_act(session, user, self.now()):
            return None
        if session.token_hash != token_hash or session.signed_in_from != known_hash:
            log.info("follow not joined session=%s", session.short_id)
            return None
        return SignedIn(session, user)
