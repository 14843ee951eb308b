"""The pytest plugin users enable: its fixtures, the nim_accounts marker, the delivery assertions.

tests/conftest.py enables the plugin, so these tests use its fixtures as users do;
the README's example runs in a pytest of its own (pytester), as a user's file would.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import nim_async as nim
from nim_async.testing import NimEmulator, assert_delivered, deliveries
from nim_async.testing.pytest_plugin import APP_KEY, BASE_URL

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.anyio

# The README's example, as a user writes it: a conftest and a test file.
USER_CONFTEST = """\
import pytest

pytest_plugins = ["nim_async.testing.pytest_plugin"]


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
README_EXAMPLE = """\
import pytest

from nim_async.testing import assert_delivered


async def on_signup(client, accid):
    await client.send_attach_msg("system", accid, {"type": "welcome"})


@pytest.mark.anyio
async def test_signup_sends_a_welcome(nim_client, nim_emulator):
    await on_signup(nim_client, "alice")
    assert_delivered(nim_emulator, to="alice", attach={"type": "welcome"})
"""
STRICT = ("-p", "no:cacheprovider", "--strict-markers", "-W", "error")


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    """The README's five-line signup test passes in a project that enables the plugin."""
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_signup=README_EXAMPLE)
    pytester.runpytest(*STRICT).assert_outcomes(passed=1)


def test_the_readme_example_fails_on_the_line_of_the_assertion(pytester: pytest.Pytester) -> None:
    """Without the welcome, the user's test fails at their assert_delivered line, saying why."""
    pytester.makeconftest(USER_CONFTEST)
    broken = README_EXAMPLE.replace('{"type": "welcome"})\n\n', '{"type": "hello"})\n\n', 1)
    pytester.makepyfile(test_signup=broken)
    result = pytester.runpytest(*STRICT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       assert_delivered(nim_emulator, to="alice", attach={"type": "welcome"})',
            "E       AssertionError: expected 1 delivery to 'alice' with attach "
            "{'type': 'welcome'}, found 0",
            "E         deliveries to 'alice': 1",
            """E           msg/sendAttachMsg from 'system': attach {"type":*"hello"}""",
        ]
    )


def test_the_client_is_closed_after_the_test(pytester: pytest.Pytester) -> None:
    """nim_client is closed once its test ends: a later call raises ClientStateError."""
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(
        test_closing="""
        import pytest
        import nim_async as nim

        pytestmark = pytest.mark.anyio
        CLIENTS = []

        async def test_uses_the_client(nim_client):
            await nim_client.send_msg("alice", "bob", nim.Text("hi"))
            CLIENTS.append(nim_client)

        async def test_the_client_of_the_first_test_is_closed():
            with pytest.raises(nim.ClientStateError):
                await CLIENTS[0].send_msg("alice", "bob", nim.Text("hi"))
        """
    )
    # The second test reads the first one's client: keep them in file order.
    pytester.runpytest(*STRICT, "-p", "no:randomly").assert_outcomes(passed=2)


async def test_the_client_sends_to_the_emulator(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """nim_client is the test app's, at the in-process base URL, with the default limits."""
    await nim_client.send_msg("alice", "bob", nim.Text("hi"))
    assert nim_client.app_key == APP_KEY
    assert str(nim_client.base_url) == BASE_URL
    assert nim_client.rate_limits == nim.RateLimits.default()
    assert [call.action for call in nim_emulator.calls] == ["msg/sendMsg"]


@pytest.mark.parametrize("run", ["first", "second"])
async def test_each_test_has_a_budget_of_its_own(nim_client: nim.NimClient, run: str) -> None:
    """Both runs spend broadcastMsg's whole budget (10 a minute) at once: none is shared."""
    assert isinstance(nim_client.limiter, nim.LocalLimiter)
    # A shared budget would make the second run wait a minute for its first slot.
    with anyio.fail_after(5):
        for n in range(10):
            await nim_client.broadcast(f"{run} {n}")
    assert nim_client.limiter_stats()["msg/broadcastMsg"].calls == 10


async def test_without_the_marker_every_account_exists(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """With no nim_accounts marker the emulator knows every accid."""
    await nim_client.send_msg("anyone", "someone", nim.Text("hi"))
    assert len(deliveries(nim_emulator, to="someone")) == 1


@pytest.mark.nim_accounts("alice", "bob")
async def test_the_accounts_marker_makes_other_accids_unknown(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """Marked nim_accounts("alice", "bob"), a message to carol gets 404; bob's arrives."""
    with pytest.raises(nim.NotFound):
        await nim_client.send_msg("alice", "carol", nim.Text("hi"))
    await nim_client.send_msg("alice", "bob", nim.Text("hi"))
    assert [message.to for message in deliveries(nim_emulator)] == ["bob"]


@pytest.mark.nim_accounts
async def test_an_empty_accounts_marker_knows_no_account(nim_client: nim.NimClient) -> None:
    """nim_accounts() with no accid: every accid gets 404, until the test registers it."""
    with pytest.raises(nim.NotFound):
        await nim_client.send_msg("alice", "alice", nim.Text("hi"))


async def test_deliveries_lists_every_accepted_message_in_order(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """deliveries() holds one record per recipient, a batch included; to= filters."""
    await nim_client.send_msg("alice", "bob", nim.Text("hi"))
    await nim_client.send_batch_attach_msg("system", ["bob", "carol"], {"type": "news"})
    assert [(d.action, d.to) for d in deliveries(nim_emulator)] == [
        ("msg/sendMsg", "bob"),
        ("msg/sendBatchAttachMsg", "bob"),
        ("msg/sendBatchAttachMsg", "carol"),
    ]
    assert [d.from_ for d in deliveries(nim_emulator, to="bob")] == ["alice", "system"]


async def test_a_mapping_matches_the_decoded_field_and_a_string_the_field_as_sent(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """body={"msg": "hi"} matches the text "hi" however encoded; a string must be exact."""
    await nim_client.send_msg("alice", "bob", nim.Text("hi"))
    (message,) = assert_delivered(nim_emulator, to="bob", body={"msg": "hi"}, from_="alice")
    assert message.body is not None
    assert_delivered(nim_emulator, to="bob", body=message.body)
    assert_delivered(nim_emulator, to="bob", body=message.body + " ", times=0)
    assert_delivered(nim_emulator, to="bob", attach={"msg": "hi"}, times=0)
    assert_delivered(nim_emulator, to="bob", from_="mallory", times=0)


async def test_times_counts_the_matching_deliveries(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """times= is an exact count: two sends match times=2, and not the default times=1."""
    for _ in range(2):
        await nim_client.send_attach_msg("system", "bob", {"type": "ping"})
    assert len(assert_delivered(nim_emulator, to="bob", attach={"type": "ping"}, times=2)) == 2
    with pytest.raises(AssertionError, match=r"^expected 1 delivery to 'bob'.*, found 2\n"):
        assert_delivered(nim_emulator, to="bob", attach={"type": "ping"})


@pytest.mark.nim_accounts("system", "alice", "bob")
async def test_a_missing_delivery_is_explained(
    nim_client: nim.NimClient, nim_emulator: NimEmulator
) -> None:
    """The failure lists what the accid got, the calls that failed for it, and the others."""
    await nim_client.send_attach_msg("system", "alice", {"type": "welcome"})
    with pytest.raises(nim.NotFound):
        await nim_client.send_attach_msg("system", "carol", {"type": "welcome"})
    await nim_client.send_batch_attach_msg("system", ["bob", "carol"], {"type": "news"})
    with pytest.raises(AssertionError) as failure:
        assert_delivered(nim_emulator, to="carol", attach={"type": "welcome"})
    assert (
        str(failure.value)
        == (
            "expected 1 delivery to 'carol' with attach {'type': 'welcome'}, found 0\n"
            "  deliveries to 'carol': none\n"
            "  calls naming 'carol' that failed or left it out: 2\n"
            "    msg/sendAttachMsg answered code 404: "
            + nim_emulator.calls[1].answer["desc"]  # type: ignore[index]
            + "\n"
            "    msg/sendBatchAttachMsg answered 'carol' as unregistered\n"
            "  deliveries to others: 'alice' ×1, 'bob' ×1\n"
            "  NIM emulator answered 3 calls: code 200 ×2, code 404 ×1; 0 blocked (416)"
        )
    )


def test_an_empty_emulator_says_it_accepted_nothing(nim_emulator: NimEmulator) -> None:
    """With no call at all the failure says so, in the emulator's summary line."""
    with pytest.raises(AssertionError) as failure:
        assert_delivered(nim_emulator, to="bob", body={"msg": "hi"}, from_="alice", times=2)
    assert str(failure.value) == (
        "expected 2 deliveries to 'bob' from 'alice' with body {'msg': 'hi'}, found 0\n"
        "  deliveries to 'bob': none\n"
        "  NIM emulator answered 0 calls; 0 blocked (416)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"body": "x", "attach": "y"}, "not both"),
        ({"times": -1}, "times must be 0 or more"),
    ],
)
def test_contradictory_expectations_are_refused(
    nim_emulator: NimEmulator, options: dict[str, Any], message: str
) -> None:
    """Both body and attach, or a negative times, is a mistake in the test: ValueError."""
    with pytest.raises(ValueError, match=message):
        assert_delivered(nim_emulator, to="bob", **options)
