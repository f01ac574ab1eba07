from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from authdemo.domain import (
    AuthSession,
    InvalidPassword,
    InvalidUsername,
    SessionPolicy,
    SystemClock,
    ThrottlePolicy,
    ThrottleState,
    User,
    address_key,
    check_password_policy,
    client_network,
    fold_name,
    may_act,
    normalize_username,
    password_for_verify,
    username_key,
)
from tests.support.fakes import T0


def session(**overrides: object) -> AuthSession:
    values: dict[str, object] = dict(
        id=1,
        token_hash="ab" * 32,
        user_id=1,
        created_at=T0,
        last_seen_at=T0,
        idle_expires_at=T0 + timedelta(minutes=30),
        absolute_expires_at=T0 + timedelta(hours=12),
        revoked_at=None,
        client_addr="",
        user_agent="",
    )
    values.update(overrides)
    return AuthSession(**values)  # type: ignore[arg-type]


def test_usernames_keep_display_form_and_fold_case_for_lookup() -> None:
    assert normalize_username("Alice") == ("Alice", "alice")


def test_username_lookup_key_applies_nfkc_and_casefold() -> None:
    # Fullwidth letters and the German sharp s fold to the same key as their plain forms.
    assert username_key("\uff21\uff2c\uff29\uff23\uff25") == username_key("alice")  # fullwidth
    assert username_key("STRASSE") == username_key("straße")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter a username"),
        (" alice", "whitespace"),
        ("al ice", "letters, digits"),
        ("al\x00ice", "letters, digits"),
        ("a" * 65, "at most 64"),
        ("a" * 1_000_000, "at most 64"),
        ("<script>", "letters, digits"),
    ],
)
def test_invalid_usernames_are_refused_with_a_clear_message(raw: str, message: str) -> None:
    with pytest.raises(InvalidUsername, match=message):
        normalize_username(raw)


def test_username_key_is_none_for_names_no_user_can_have() -> None:
    assert username_key("bad name") is None


def test_a_username_whose_folded_form_is_too_long_is_refused() -> None:
    """Case folding lengthens some names ("ß" → "ss"): the lookup key must fit too."""
    with pytest.raises(InvalidUsername, match="at most 64"):
        normalize_username("ß" * 40)  # 40 characters, 80 once folded
    assert username_key("ß" * 63 + "1") is None


def test_a_username_whose_folded_form_is_exactly_the_limit_is_accepted() -> None:
    display, key = normalize_username("ß" * 32)
    assert len(display) == 32 and key == "ss" * 32


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("short", "at least 8"),
        ("x" * 1025, "at most 1024"),
        ("password\x00x", "control characters"),
    ],
)
def test_password_policy_refuses_with_a_clear_message(raw: str, message: str) -> None:
    with pytest.raises(InvalidPassword, match=message):
        check_password_policy(raw)


def test_password_policy_accepts_unicode_and_spaces() -> None:
    assert check_password_policy("correct horse ☃ battery") == "correct horse ☃ battery"


def test_login_passwords_that_are_empty_or_huge_are_refused_before_hashing() -> None:
    assert password_for_verify("") is None
    assert password_for_verify("x" * 1_000_000) is None
    assert password_for_verify("fine password") == "fine password"


def test_session_is_live_until_the_earlier_of_idle_and_absolute_expiry() -> None:
    s = session()
    assert s.is_live(T0 + timedelta(minutes=29))
    assert not s.is_live(T0 + timedelta(minutes=30))
    late = session(idle_expires_at=T0 + timedelta(hours=13))
    assert not late.is_live(T0 + timedelta(hours=12))


def test_a_revoked_session_is_not_live() -> None:
    assert not session(revoked_at=T0).is_live(T0)


def test_renewal_is_due_only_when_less_than_half_the_idle_window_remains() -> None:
    policy = SessionPolicy(idle_timeout=timedelta(minutes=30))
    s = session()
    assert not s.needs_renewal(T0 + timedelta(minutes=14), policy)
    assert s.needs_renewal(T0 + timedelta(minutes=16), policy)


def test_renewal_never_extends_past_the_absolute_expiry() -> None:
    policy = SessionPolicy(idle_timeout=timedelta(minutes=30))
    s = session(absolute_expires_at=T0 + timedelta(minutes=40))
    renewed = s.renewed(T0 + timedelta(minutes=20), policy)
    assert renewed.idle_expires_at == T0 + timedelta(minutes=40)
    assert not renewed.needs_renewal(T0 + timedelta(minutes=39), policy)


ALICE = User(1, "alice", True, T0, T0, credential_epoch=3)


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({}, True),
        ({"session": {"user_epoch": 2}}, False),  # opened before a password change
        ({"user": {"is_active": False}}, False),  # disabled
        ({"user": {"id": 2}}, False),  # someone else's row
        ({"session": {"revoked_at": T0}}, False),
        ({"session": {"idle_expires_at": T0}}, False),
        ({"session": {"absolute_expires_at": T0}}, False),
    ],
)
def test_a_session_may_act_only_if_every_clause_of_the_rule_holds(
    change: dict[str, dict[str, object]], allowed: bool
) -> None:
    s = replace(session(user_epoch=3), **change.get("session", {}))  # type: ignore[arg-type]
    user = replace(ALICE, **change.get("user", {}))  # type: ignore[arg-type]
    assert may_act(s, user, T0) is allowed


def test_a_signed_in_session_without_its_user_may_not_act() -> None:
    assert not may_act(session(user_epoch=3), None, T0)
    assert may_act(session(user_id=None), None, T0)  # anonymous


def test_a_reservation_counts_the_attempt_before_it_is_checked() -> None:
    policy = ThrottlePolicy(account_threshold=3)
    state = None
    for expected in (1, 2):
        state = policy.reserve(state, 3, T0)
        assert state is not None
        assert (state.failures, state.blocked_until) == (expected, None)
    state = policy.reserve(state, 3, T0)  # the third may still try, and starts the block
    assert state is not None
    assert state.blocked_until == T0 + timedelta(seconds=1)
    assert policy.reserve(state, 3, T0) is None  # the fourth is refused unhashed
    refunded = policy.refund(state, 3)  # the third succeeded after all
    assert (refunded.failures, refunded.blocked_until) == (2, None)


@pytest.mark.parametrize(
    ("addr", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),  # IPv4: each address on its own
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),  # an IPv4 client on a dual-stack socket
        ("", ""),
        ("cli", "cli"),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_64(addr: str, network: str) -> None:
    assert client_network(addr) == network
    assert address_key(addr) == f"address:{network}"


@pytest.mark.parametrize(
    ("state", "forgotten"),
    [
        (ThrottleState(0, None, T0), True),  # nothing counted
        (ThrottleState(3, None, T0 - timedelta(hours=25)), True),  # failures of yesterday
        (ThrottleState(9, T0 - timedelta(hours=24), T0 - timedelta(hours=25)), True),
        (ThrottleState(3, None, T0 - timedelta(hours=23)), False),  # still counted
        (ThrottleState(9, T0 - timedelta(seconds=1), T0 - timedelta(hours=1)), False),
        (ThrottleState(0, T0 + timedelta(minutes=1), T0 - timedelta(hours=30)), False),  # block
    ],
)
def test_a_throttle_row_is_forgotten_only_when_it_would_change_no_decision(
    state: ThrottleState, forgotten: bool
) -> None:
    policy = ThrottlePolicy()
    assert policy.forgotten(state, T0) is forgotten
    if forgotten:  # what a reservation would do with the row is what it does without it
        assert policy.reserve(state, 5, T0) == policy.reserve(None, 5, T0)


# --- bounds, each on both sides -------------------------------------------------------------


def test_the_cheap_length_bound_on_a_username_is_four_times_the_limit_in_code_points() -> None:
    # Up to 4 x 64 code points the name is normalised and its real fault told ...
    with pytest.raises(InvalidUsername, match="cannot start or end with whitespace"):
        normalize_username(" " + "a" * 255)
    # ... beyond, it is refused unread.
    with pytest.raises(InvalidUsername, match=r"at most 64 characters long\.$"):
        normalize_username(" " + "a" * 256)


def test_a_name_folds_to_its_lookup_key_and_an_invalid_one_is_bounded_first() -> None:
    # U+0390 case-folds to three code points that NFKC composes back into one.
    assert fold_name("\u0390") == username_key("\u0390") == "\u0390"
    assert fold_name("A" * 300) == "a" * 256


def test_a_password_of_exactly_the_longest_length_is_verified() -> None:
    assert password_for_verify("x" * 1024) == "x" * 1024
    assert password_for_verify("x" * 1025) is None


def test_a_client_that_is_no_address_counts_by_its_first_64_characters() -> None:
    assert client_network("h" * 100) == "h" * 64


def test_a_renewal_is_due_only_inside_the_margin_and_records_when() -> None:
    policy = SessionPolicy()
    s = session(idle_expires_at=T0 + policy.renew_margin)
    assert not s.needs_renewal(T0, policy)  # exactly the margin away: not yet
    assert s.needs_renewal(T0 + timedelta(seconds=1), policy)
    later = T0 + timedelta(minutes=3)
    assert s.renewed(later, policy).last_seen_at == later


def test_the_system_clock_tells_aware_utc_time() -> None:
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)


def test_a_failure_exactly_forget_after_old_still_counts() -> None:
    policy = ThrottlePolicy()
    state = ThrottleState(3, None, T0)
    at_the_edge = T0 + policy.forget_after
    reserved = policy.reserve(state, 5, at_the_edge)
    assert reserved is not None and reserved.failures == 4
    assert not policy.forgotten(state, at_the_edge)
    assert policy.forgotten(state, at_the_edge + timedelta(seconds=1))


def test_a_block_that_ends_now_is_no_longer_in_force() -> None:
    policy = ThrottlePolicy()
    assert policy.forgotten(ThrottleState(0, T0, T0 - timedelta(minutes=1)), T0)


def test_a_refund_gives_back_one_attempt_down_to_none_keeping_a_block_still_earned() -> None:
    policy = ThrottlePolicy()
    block = T0 + timedelta(seconds=2)
    assert policy.refund(ThrottleState(1, None, T0), 5) == ThrottleState(0, None, T0)
    assert policy.refund(ThrottleState(0, None, T0), 5) == ThrottleState(0, None, T0)
    assert policy.refund(ThrottleState(6, block, T0), 5) == ThrottleState(5, block, T0)
    assert policy.refund(ThrottleState(5, block, T0), 5) == ThrottleState(4, None, T0)


def test_the_back_off_exponent_stops_at_32() -> None:
    policy = ThrottlePolicy(base=timedelta(microseconds=1), cap=timedelta(days=1))
    assert policy.block_for(5 + 40, 5) == timedelta(microseconds=2**32)
