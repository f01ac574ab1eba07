"""Usernames and passwords an attacker (or a careless script) might send, for the
Hypothesis properties that run them through sign-in and create-user on every backend."""

from __future__ import annotations

from hypothesis import strategies as st

SPECIAL_NAMES = [
    "",
    " ",
    "\x00",
    "a\x00b",
    " alice ",
    "ALICE",
    "\uff21\uff2c\uff29\uff23\uff25",  # fullwidth ALICE
    "\u200b",
    "x\x1b[2K\r2026-01-01 00:00:00  login_ok  alice",  # a forged audit line
    "bob\u202eecilA",  # a bidi override
    "line\u2028separator",
    "\ud800lone",  # an unpaired surrogate
    "\ufdfa" * 20,  # one character that NFKC turns into eighteen
    "\ufb03" * 30,  # "ffi" ligatures: 30 characters, 90 once normalised
    "ß" * 32,  # exactly 64 once folded
    "ß" * 33,
    "ß" * 63 + "1",  # 64 as typed, 127 once folded
    "İ" * 40,  # folds to two code points each
    "x" * 65,
    "y" * 300,
    "correct horse battery staple",  # a password typed into the username box
    "'; DROP TABLE users; --",
]

USERNAMES = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(max_size=80),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=80),
    st.builds(lambda n, tail: "ß" * n + tail, st.integers(0, 70), st.text(max_size=4)),
)
PASSWORDS = st.one_of(
    st.sampled_from(["", "whatever pw", "x" * 2000, "correct horse"]),
    st.text(max_size=40),
)
