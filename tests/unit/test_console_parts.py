"""The review console's parts on their own: the users file and ``propwatch console add-user``,
sessions, claims, the priority score, CSV neutralisation, and the decision a form makes."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from aiohttp import web

from classifiers.base import LABELS
from streams.cli import EXIT_USAGE, main
from streams.console.audit import neutralise
from streams.console.claims import Claims
from streams.console.decide import DecideForm, FormError, build_decision
from streams.console.priority import AGE_DOUBLING_H, SEVERITY, priority, urgency
from streams.console.sessions import COOKIE, Sessions
from streams.console.users import User, Users, UsersFileError, add_user
from streams.records import DecisionMessage, Review, encode
from tests.unit.console_support import HASHER, Clock, record

# --- users --------------------------------------------------------------------------------------


def test_add_user_creates_and_updates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    assert add_user(path, "ria", "reviewer", "first secret", HASHER) is True
    assert add_user(path, "sue", "supervisor", "another secret", HASHER) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert add_user(path, "ria", "supervisor", "second secret", HASHER) is False
    data = json.loads(path.read_text())
    assert [(u["name"], u["role"]) for u in data["users"]] == [("ria", "supervisor"), ("sue", "supervisor")]
    assert all(u["hash"].startswith("$argon2id$") for u in data["users"])
    assert "secret" not in path.read_text()
    users = Users.load(path, HASHER)
    assert users.authenticate("ria", "second secret") == User("ria", "supervisor")
    assert users.authenticate("ria", "first secret") is None
    assert users.authenticate("nobody", "second secret") is None
    assert users.authenticate("ria", "") is None
    assert [p.name for p in tmp_path.iterdir()] == ["users.json"], "no temporary file left"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("not json", "not a JSON users file"),
        ('["ria"]', "expected"),
        ('{"users": [{"name": "ria", "role": "reviewer"}]}', "exactly name, role and hash"),
        ('{"users": [{"name": "r i a", "role": "reviewer", "hash": "$argon2id$x"}]}', "name must match"),
        ('{"users": [{"name": "ria", "role": "admin", "hash": "$argon2id$x"}]}', "role must be one of"),
        ('{"users": [{"name": "ria", "role": "reviewer", "hash": "plain"}]}', "argon2 hash"),
        (
            '{"users": [{"name": "ria", "role": "reviewer", "hash": "$argon2id$x"},'
            ' {"name": "ria", "role": "auditor", "hash": "$argon2id$y"}]}',
            "appears twice",
        ),
    ],
)
def test_a_bad_users_file_is_refused_with_the_reason(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "users.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsersFileError, match=problem):
        Users.load(path, HASHER)


def test_add_user_refuses_bad_names_roles_and_empty_passwords(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    for name, role, secret in (("<b>", "reviewer", "x"), ("ria", "root", "x"), ("ria", "reviewer", "")):
        with pytest.raises(UsersFileError):
            add_user(path, name, role, secret, HASHER)  # type: ignore[arg-type]
    assert not path.exists()


def test_a_broken_hash_is_a_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [{"name": "ria", "role": "reviewer", "hash": "$argon2id$broken"}]}))
    assert Users.load(path, HASHER).authenticate("ria", "anything") is None


def test_the_cli_adds_users_from_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users.json"
    monkeypatch.setenv("PROPWATCH_CONSOLE_USERS_FILE", str(path))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long pass phrase\n"))
    assert main(["console", "add-user", "ria", "--role", "reviewer", "--password-stdin"]) == 0
    assert "added ria (reviewer)" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Users.load(path).authenticate("ria", "a long pass phrase") == User("ria", "reviewer")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["console", "add-user", "ria", "--role", "reviewer", "--password-stdin"]) == EXIT_USAGE
    assert "password is empty" in capsys.readouterr().err


def test_the_console_refuses_to_start_without_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users.json"
    monkeypatch.setenv("PROPWATCH_CONSOLE_USERS_FILE", str(path))
    assert main(["console"]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    path.write_text('{"users": []}')
    assert main(["console", "--port", "1"]) == EXIT_USAGE
    assert "has no users" in capsys.readouterr().err


# --- sessions and claims ------------------------------------------------------------------------


def test_a_session_cookie_holds_until_changed_or_expired() -> None:
    clock = Clock()
    sessions = Sessions(b"k" * 32, secure=True, clock=clock, max_age_s=100)
    session = sessions.new("ria")
    response = web.Response()
    sessions.set_cookie(response, session)
    cookie = response.cookies[COOKIE].value
    assert sessions.read(cookie) == session
    assert sessions.read(cookie[:-2] + ("xy" if not cookie.endswith("xy") else "zz")) is None
    assert Sessions(b"j" * 32, secure=True, clock=clock).read(cookie) is None, "another key"
    forged = sessions._serializer.dumps(["ria", 7, session.issued])
    assert sessions.read(forged) is None, "a signed value of the wrong shape"
    assert sessions.read(None) is None and sessions.read("x" * 5000) is None
    clock.now += 101
    assert sessions.read(cookie) is None
    assert Sessions.csrf_ok(session, session.csrf) and not Sessions.csrf_ok(session, session.csrf + "x")
    assert not Sessions.csrf_ok(session, None) and not Sessions.csrf_ok(None, session.csrf)
    assert sessions.new("ria").csrf != session.csrf


def test_claims_hold_for_their_time_and_belong_to_one_user() -> None:
    clock = Clock()
    claims = Claims(300, clock)
    first = claims.claim("r1", "ria")
    assert first.user == "ria" and first.until == clock.now + 300
    assert claims.claim("r1", "rob") == first, "rob sees ria's claim"
    clock.now += 100
    assert claims.claim("r1", "ria").until == clock.now + 300, "opening it again renews it"
    claims.release("r1", "rob")
    assert claims.holder("r1") is not None, "only the holder releases"
    clock.now += 301
    assert claims.holder("r1") is None and claims.active() == {}
    assert claims.claim("r1", "rob").user == "rob"
    claims.release("r1", "rob")
    assert claims.holder("r1") is None


# --- priority -----------------------------------------------------------------------------------


def test_every_label_has_a_severity() -> None:
    assert set(SEVERITY) == set(LABELS) and all(0 < v <= 1 for v in SEVERITY.values())


def test_priority_is_severity_times_confidence_raised_by_age() -> None:
    scores = {label: 0.1 for label in LABELS} | {"recruitment": 0.6, "threat": 0.4}
    review = Review.from_json(encode(record("rv-1", scores=scores)))
    assert urgency(review) == (pytest.approx(0.42), "recruitment"), "0.7 x 0.6 beats 1.0 x 0.4"
    assert priority(review, 0) == pytest.approx(0.42)
    assert priority(review, AGE_DOUBLING_H * 3600) == pytest.approx(0.84)
    assert priority(review, -50) == pytest.approx(0.42), "a time ahead counts as no age"


# --- CSV and the decision a form makes ----------------------------------------------------------


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


def test_plain_cells_stay() -> None:
    assert neutralise("a reason = fine") == "a reason = fine" and neutralise("") == ""


def test_a_form_makes_the_decision_a_worker_applies() -> None:
    review = Review.from_json(encode(record("rv-1", labels=("recruitment",))))
    ria = User("ria", "reviewer")

    def build(labels: tuple[str, ...] = ("recruitment",), **fields: str) -> DecisionMessage:
        return build_decision(
            DecideForm.read({"decision": "approve", **fields}, list(labels)),
            review,
            ria,
            labels=LABELS,
            decision_id="d-1",
            decided_at="2026-11-18T07:00:00.000Z",
            supersedes=None,
            key=None,
        )

    message = build(note="  seen before \r\n twice ")
    assert message.reason == "Note: seen before \n twice" and message.labels == ("recruitment",)
    assert (message.role, message.decision_id, message.override_reason) == ("reviewer", "d-1", None)
    for labels, fields, problem in (
        (("recruitment",), {"decision": "maybe"}, "approve or reject"),
        ((), {}, "one or more labels"),
        (("threat",), {}, "override reason"),
        ((), {"decision": "reject"}, "needs a reason"),
        ((), {"decision": "reject", "reason": "x" * 5000}, "at most 4096"),
        ((), {"decision": "reject", "reason": "bell \x07"}, "control characters"),
    ):
        with pytest.raises(FormError, match=problem):
            build(labels, **fields)
