"""The console's accounts over time: logins refused after too many failures (per user name and per
client address), and the users file followed as it changes (users added, removed, given another
role, or a file that is not one). No broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from streams.console import throttle as throttle_module
from streams.console.throttle import LoginThrottle
from streams.console.users import RELOAD_CHECK_S, User, Users, add_user
from streams.console.views import LOGIN_FAILED, LOGIN_THROTTLED
from tests.unit.console_support import HASHER, Clock, Desk, desk, password, record, sample

CSRF_FIELD = re.compile(r'name="csrf" value="[^"]+"')
WINDOW_S = 900.0


def throttled(tmp_path: Path, per_name: int = 3, per_address: int = 0, **settings: Any) -> Any:
    return desk(
        tmp_path,
        console_login_attempts=per_name,
        console_login_address_attempts=per_address,
        console_login_window_s=WINDOW_S,
        **settings,
    )


def count_checks(console: Desk) -> list[str]:
    """The names whose password the console checks from now on."""
    checked: list[str] = []
    users = console.console.users
    authenticate = users.authenticate

    def counting(name: str, secret: str) -> User | None:
        checked.append(name)
        return authenticate(name, secret)

    users.authenticate = counting  # type: ignore[method-assign]
    return checked


async def attempt(console: Desk, name: str, secret: str) -> tuple[int, str]:
    async with console.browser() as visitor:
        await visitor.get("/login")
        async with visitor.session.post(
            "/login", data={"csrf": visitor.csrf, "username": name, "password": secret}, allow_redirects=False
        ) as response:
            return response.status, CSRF_FIELD.sub("", await response.text())


# --- login throttling ----------------------------------------------------------------------------


async def test_a_name_with_too_many_failures_is_refused_without_a_password_check(tmp_path: Path) -> None:
    async with throttled(tmp_path) as console:
        checked = count_checks(console)
        for _ in range(3):
            status, page = await attempt(console, "ria", "a guess")
            assert status == 200 and LOGIN_FAILED in page
        status, page = await attempt(console, "ria", password("ria"))
        assert status == 429 and LOGIN_THROTTLED in page and LOGIN_FAILED not in page
        assert checked == ["ria"] * 3, "the right password was not even checked"
        assert (await attempt(console, "rob", password("rob")))[0] == 303, "another name is not refused"

        console.clock.now += WINDOW_S - 1
        assert (await attempt(console, "ria", password("ria")))[0] == 429, "a refused login counts nothing"
        console.clock.now += 1
        assert (await attempt(console, "ria", password("ria")))[0] == 303, "the failures have aged out"
    assert sample(console.metrics, "logins_total", outcome="failure") == 3
    assert sample(console.metrics, "logins_total", outcome="throttled") == 2
    assert sample(console.metrics, "logins_total", outcome="success") == 2


async def test_an_unknown_name_is_refused_the_same_way(tmp_path: Path) -> None:
    """Whether a name is refused tells nothing about whether it is a user's."""
    async with throttled(tmp_path) as console:
        answers = {}
        for name in ("ria", "nobody", "<not a name>"):
            for _ in range(3):
                assert (await attempt(console, name, "a guess"))[0] == 200
            answers[name] = await attempt(console, name, "a guess")
    assert answers["ria"] == answers["nobody"] == answers["<not a name>"]
    assert answers["ria"][0] == 429


async def test_a_login_that_succeeds_clears_its_names_failures(tmp_path: Path) -> None:
    async with throttled(tmp_path) as console:
        for _ in range(2):
            await attempt(console, "ria", "a typo")
        assert (await attempt(console, "ria", password("ria")))[0] == 303
        for _ in range(2):
            assert (await attempt(console, "ria", "another typo"))[0] == 200
        assert (await attempt(console, "ria", password("ria")))[0] == 303


async def test_an_address_with_too_many_failures_is_refused_whatever_the_name(tmp_path: Path) -> None:
    async with throttled(tmp_path, per_name=100, per_address=3) as console:
        for name in ("ria", "rob", "sue"):
            assert (await attempt(console, name, "password1"))[0] == 200, "one guess per name: spraying"
        assert (await attempt(console, "ada", password("ada")))[0] == 429


async def test_concurrent_guesses_cannot_overtake_the_limit(tmp_path: Path) -> None:
    """Every admitted login counts as a failure while its password is checked: of twenty guesses
    sent at once, only the first three are checked."""
    async with throttled(tmp_path) as console:
        checked = count_checks(console)
        statuses = await asyncio.gather(*(attempt(console, "ria", f"guess {i}") for i in range(20)))
    assert len(checked) == 3 and sorted(status for status, _ in statuses) == [200] * 3 + [429] * 17


async def test_behind_the_proxy_header_the_login_form_and_its_limit_are_off(tmp_path: Path) -> None:
    async with throttled(tmp_path, per_name=1, console_proxy_user_header="X-Remote-User") as console:
        for _ in range(3):
            assert (await attempt(console, "ria", "a guess"))[0] == 403
        async with console.browser() as visitor:
            assert (await visitor.get("/queue", headers={"X-Remote-User": "ria"}))[0] == 200
    assert sample(console.metrics, "logins_total", outcome="throttled") == 0


def test_the_throttle_remembers_a_bounded_number_of_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle_module, "MAX_TRACKED", 3)
    clock = Clock(0.0)
    limit = LoginThrottle(per_name=2, per_address=0, window_s=60.0, clock=clock)
    for _ in range(2):
        assert limit.admit("ria", "10.0.0.1") is not None
    assert limit.admit("ria", "10.0.0.1") is None
    for name in ("a1", "a2", "a3"):  # three more names: ria's failures, the oldest, are forgotten
        clock.now += 1
        assert limit.admit(name, "10.0.0.1") is not None
    assert limit.admit("ria", "10.0.0.1") is not None


# --- the users file, followed --------------------------------------------------------------------


def rewrite(path: Path, change: Any) -> None:
    """Change the users file (``change`` does) and make sure its modification time moves."""
    before = path.stat().st_mtime_ns
    change()
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def test_a_user_added_removed_or_given_another_role_counts_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    async with desk(tmp_path) as console, console.browser("ria") as ria, console.browser("rob") as rob:
        console.add_reviews(rv := record("rv-1"))
        assert 'data-role="reviewer"' in (await rob.get("/queue"))[1]

        def edit() -> None:
            add_user(path, "zed", "reviewer", "zed's pass phrase", HASHER)
            add_user(path, "rob", "auditor", password("rob"), HASHER)
            data = json.loads(path.read_text())
            data["users"] = [row for row in data["users"] if row["name"] != "ria"]
            path.write_text(json.dumps(data))

        rewrite(path, edit)
        assert (await attempt(console, "zed", "zed's pass phrase"))[0] == 200, "not looked at yet"
        console.clock.now += RELOAD_CHECK_S
        assert (await ria.get("/queue"))[0] == 303, "a removed user's session ends at their next request"
        assert (await attempt(console, "ria", password("ria")))[0] == 200
        assert (await attempt(console, "zed", "zed's pass phrase"))[0] == 303
        _, page = await rob.get(f"/item/{rv['review_id']}")
        assert 'data-role="auditor"' in page and 'id="approve-form"' not in page, "rob's new role"
    assert sample(console.metrics, "users_file_reloads_total", outcome="reloaded") == 1


async def test_a_users_file_that_is_not_one_keeps_the_users_read_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.json"
    async with desk(tmp_path) as console, console.browser("ria") as ria:
        good = path.read_text()
        rewrite(path, lambda: path.write_text(good[: len(good) // 2]))  # a half-written edit
        console.clock.now += RELOAD_CHECK_S
        assert (await ria.get("/queue"))[0] == 200, "ria's session holds"
        assert (await attempt(console, "sue", password("sue")))[0] == 303, "everyone can still log in"
        console.clock.now += RELOAD_CHECK_S
        assert (await ria.get("/queue"))[0] == 200
        assert caplog.text.count("the users file changed and cannot be read") == 1, "once per change"

        def replace() -> None:
            add_user(path.with_name("new.json"), "ria", "reviewer", "new pass", HASHER)
            os.replace(path.with_name("new.json"), path)

        rewrite(path, replace)
        console.clock.now += RELOAD_CHECK_S
        assert (await attempt(console, "ria", "new pass"))[0] == 303, "the next good file is read"
        assert (await attempt(console, "sue", password("sue")))[0] == 200
    assert sample(console.metrics, "users_file_reloads_total", outcome="invalid") == 1
    assert sample(console.metrics, "users_file_reloads_total", outcome="reloaded") == 1


def test_users_without_a_file_never_change(tmp_path: Path) -> None:
    users = Users({"ria": (User("ria", "reviewer"), HASHER.hash("x"))}, HASHER, clock=Clock(0.0))
    assert users.refresh() is None and users.get("ria") == User("ria", "reviewer")
