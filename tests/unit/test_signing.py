"""Signed decisions: the signature over a decision's fields as sent, the keys a worker holds, and
the rule that the decide agent and the decision log apply alike, so that an unsigned decision is
never in force. No broker: the review queue and the decision log are fed as their followers would
feed them (:class:`tests.unit.test_decision_rules.Desk`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from classifiers.base import LABELS
from streams.records import (
    DeadLetter,
    Decision,
    ErrorCode,
    Rejection,
    SourcePosition,
    load_schema,
    parse_decision,
)
from streams.review.signing import SIGNED_FIELDS, key_id, payload, sign, verify
from tests.unit.test_decision_rules import Desk, code, review, topics

KEY = b"unit-test-decision-key-in-force"
OLD = b"unit-test-decision-key-of-last-year"
AT = "2026-11-30T10:00:00Z"
DLQ = Draft202012Validator(load_schema("dlq"), format_checker=FormatChecker())


def fields(review_id: str = "rv-x", **extra: Any) -> dict[str, Any]:
    """A decision as the console writes it, before its signature."""
    return {
        "review_id": review_id,
        "decision": "approve",
        "reviewer": "analyst-7",
        "role": "reviewer",
        "decision_id": "d-1",
        "decided_at": AT,
        **extra,
    }


def signed(sent: dict[str, Any], key: bytes = KEY) -> dict[str, Any]:
    return {**sent, "signature": sign(sent, key)}


def parse(sent: dict[str, Any] | bytes, keys: Sequence[bytes] = (KEY,)) -> Decision | Rejection:
    raw = sent if isinstance(sent, bytes) else json.dumps(sent).encode()
    return parse_decision(raw, labels=LABELS, default_decided_at=AT, keys=keys)


def unsigned(result: Decision | Rejection) -> str:
    """The reason of an ``unsigned_decision`` rejection (and its dead letter fits the schema)."""
    assert isinstance(result, Rejection) and result.code is ErrorCode.UNSIGNED_DECISION, result
    dead = DeadLetter.of(result, b"{}", SourcePosition("d", 0, 0), received_at=AT)
    DLQ.validate(json.loads(dead.to_json()))
    return result.message


# --- the signature ------------------------------------------------------------------------------


def test_the_payload_and_signature_are_the_documented_test_vector() -> None:
    """docs/operators.md (Signed decisions) gives this vector for implementations in other languages."""
    sent = {
        "decision_id": "d-0017",
        "review_id": "4b0e",
        "decision": "approve",
        "reviewer": "analyst-7",
        "role": "reviewer",
        "labels": ["recruitment"],
        "reason": "recruits for the Grey Heron Front \u2013 fictional",
        "decided_at": "2026-11-30T10:00:00Z",
    }
    assert payload(sent) == (
        b'propwatch-decision-v1\n{"decided_at":"2026-11-30T10:00:00Z","decision":"approve",'
        b'"decision_id":"d-0017","labels":["recruitment"],"override_reason":null,'
        b'"reason":"recruits for the Grey Heron Front \\u2013 fictional","review_id":"4b0e",'
        b'"reviewer":"analyst-7","role":"reviewer","supersedes":null}'
    )
    key = b"example-key-not-for-production"
    assert key_id(key) == "643175234f7ad7db"
    assert sign(sent, key) == (
        "v1:643175234f7ad7db:41f08dc3162b34df1c2a814e1aba7a5aa2eca22fe5fa45323551ab52d48b96de"
    )


def test_a_signed_decision_is_read_with_its_role() -> None:
    result = parse(signed(fields()))
    assert isinstance(result, Decision) and result.role == "reviewer" and result.block.role == "reviewer"


def test_a_missing_field_and_null_sign_alike() -> None:
    assert isinstance(parse({**signed(fields()), "reason": None, "supersedes": None}), Decision)


def test_a_decision_signed_with_a_previous_key_is_accepted_while_the_worker_holds_it() -> None:
    sent = signed(fields(), OLD)
    assert isinstance(parse(sent, keys=(KEY, OLD)), Decision)
    assert key_id(OLD) in unsigned(parse(sent, keys=(KEY,)))


def test_a_decision_signed_with_another_key_is_unsigned() -> None:
    reason = unsigned(parse(signed(fields(), b"a key the worker never had")))
    assert "does not hold" in reason


@pytest.mark.parametrize("signature", ["absent", None, ""])
def test_a_decision_without_a_signature_is_unsigned(signature: str | None) -> None:
    sent = fields() if signature == "absent" else {**fields(), "signature": signature}
    assert "no signature" in unsigned(parse(sent))


def _good() -> str:
    return sign(fields(), KEY)


@pytest.mark.parametrize(
    "malformed",
    [
        lambda: "v1",
        lambda: "v2" + _good()[2:],
        lambda: _good().upper(),
        lambda: _good()[:-1],
        lambda: _good() + "0",
        lambda: _good() + ":extra",
        lambda: " " + _good(),
        lambda: _good() + "\n",
        lambda: _good().replace(":", ";"),
    ],
    ids=["version-only", "v2", "upper-case", "short", "long", "extra-part", "space", "newline", "semicolons"],
)
def test_a_malformed_signature_is_unsigned(malformed: Any) -> None:
    assert "not of the form" in unsigned(parse({**fields(), "signature": malformed()}))


ALTERED = {
    "decision_id": "d-2",
    "review_id": "rv-other",
    "decision": "reject",
    "reviewer": "analyst-9",
    "role": "reviewer",
    "labels": ["threat"],
    "reason": "another reason",
    "override_reason": "another override",
    "supersedes": "d-other",
    "decided_at": "2026-11-30T10:00:01Z",
}


def test_every_signed_field_is_tampered_with_below() -> None:
    assert set(ALTERED) == set(SIGNED_FIELDS)


@pytest.mark.parametrize("name", SIGNED_FIELDS)
def test_a_tampered_signed_field_breaks_the_signature(name: str) -> None:
    sent = signed(
        fields(
            role="supervisor",
            labels=["recruitment"],
            reason="recruits",
            override_reason="an override",
            supersedes="d-0",
        )
    )
    assert isinstance(parse(sent), Decision)
    assert sent[name] != ALTERED[name]
    assert "does not match" in unsigned(parse({**sent, name: ALTERED[name]}))
    assert unsigned(parse({k: v for k, v in sent.items() if k != name}))


@pytest.mark.parametrize("name", ["decision_id", "decided_at"])
def test_a_signed_decision_carries_its_id_and_time(name: str) -> None:
    sent = {k: v for k, v in fields().items() if k != name}
    assert repr(name) in unsigned(parse(signed(sent)))


def test_without_keys_decisions_are_accepted_unsigned_as_before() -> None:
    for sent in (fields(), {**fields(), "signature": "anything at all"}, fields(supersedes="d-0", role=None)):
        assert isinstance(parse(sent, keys=()), Decision)


# --- the role ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["reviewer", None])
def test_with_keys_only_a_supervisor_supersedes(role: str | None) -> None:
    result = parse(signed(fields(supersedes="d-0", role=role)))
    assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_DECISION
    assert "supervisor" in result.message and result.item_id == "rv-x"
    result = parse(signed(fields(supersedes="d-0", role="supervisor")))
    assert isinstance(result, Decision) and result.role == "supervisor"


@pytest.mark.parametrize("keys", [(KEY,), ()])
@pytest.mark.parametrize("role", ["admin", "", 1, ["supervisor"], {"role": "supervisor"}])
def test_a_role_outside_the_roles_is_invalid(keys: tuple[bytes, ...], role: object) -> None:
    result = parse(signed(fields(role=role)), keys=keys)
    assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_DECISION
    assert "role" in result.message


# --- hostile values ------------------------------------------------------------------------------

KID = key_id(KEY)


@pytest.mark.parametrize(
    "signature",
    [
        1,
        -1.5,
        True,
        10**4000,
        [],
        ["v1", KID],
        {"v1": KID},
        "x" * 1_000_000,
        f"v1:{KID}:" + "0" * 1_000_000,
        "\ud800",
        f"v1:{KID}:{'0' * 63}\ud800",
        f"v1:{KID}:" + "é" * 64,
        f"v1:{KID}:" + "\u0660" * 64,
        "v1:" + "\u0660" * 16 + ":" + "0" * 64,
        "v1:" + "\x00" * 16 + ":" + "0" * 64,
        "<script>alert(1)</script>",
    ],
)
def test_hostile_signatures_are_unsigned_and_never_raise(signature: object) -> None:
    assert verify(fields(), signature, (KEY,)) is not None
    raw = json.dumps({**fields(), "signature": signature}).encode()
    if b"\\ud800" in raw:  # not text: the JSON parser refuses it before the signature is read
        result = parse(raw)
        assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_DECISION
    else:
        assert unsigned(parse(raw))


@pytest.mark.parametrize(
    "hostile",
    [
        {"reason": "a\ud800b"},
        {"labels": [[[[[1]]]]]},
        {"decision_id": 10**4000},
        {"decided_at": {"at": AT}},
        {"reviewer": "\x1b[31m\u202e"},
        {"review_id": None},
    ],
)
def test_hostile_fields_under_a_signature_never_raise(hostile: dict[str, Any]) -> None:
    """Signed or not, any value parsed from JSON goes through the signature check without raising;
    a decision whose fields are invalid is refused even when the key holder signed it."""
    sent = {**fields(), **hostile}
    assert verify(sent, sign(sent, KEY), (KEY,)) is None
    assert verify(sent, _good(), (KEY,)) is not None
    assert isinstance(parse({**sent, "signature": _good()}), Rejection)
    result = parse(signed(sent))
    assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_DECISION


# --- the decide agent and the decision log ------------------------------------------------------


def real(rv: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A decision on ``rv``, signed with the key in force."""
    return signed(fields(rv["review_id"], **extra))


@pytest.mark.parametrize(
    "forged",
    [
        lambda rv: fields(rv["review_id"], decision_id="forged"),
        lambda rv: fields(rv["review_id"], decision_id="d-1"),  # the real one's id: a replay?
        lambda rv: signed(fields(rv["review_id"], decision_id="forged"), b"a guessed key"),
        lambda rv: {**fields(rv["review_id"], decision_id="forged"), "signature": real(rv)["signature"]},
    ],
    ids=["unsigned", "unsigned-with-the-real-id", "another-key", "a-copied-signature"],
)
def test_a_forged_first_decision_never_blocks_the_signed_one(forged: Any) -> None:
    """Forged, then the real decision: the forgery is dead-lettered and never in force, so the
    real one is neither refused as ``already_decided`` nor taken for a replay of it."""
    rv = review()
    desk = Desk(rv, keys=(KEY,))
    assert code(desk.send(forged(rv))) == "unsigned_decision"
    out = desk.send(real(rv, decision="reject", reason="satire"))
    assert topics(out) == ["cleared", "examples"]
    cleared = out[0][1]
    assert cleared["review"]["reviewer"] == "analyst-7" and cleared["review"]["role"] == "reviewer"
    assert [entry.decision.decision_id for entry in desk.log.all(rv["review_id"])] == ["d-1"]


def test_a_forged_supersede_cannot_change_a_signed_decision() -> None:
    rv = review()
    desk = Desk(rv, keys=(KEY,))
    assert topics(desk.send(real(rv)))[0] == "referrals"
    forged = fields(
        rv["review_id"], decision="reject", decision_id="d-2", supersedes="d-1", role="supervisor"
    )
    assert code(desk.send(forged)) == "unsigned_decision"
    late = desk.send(real(rv, decision="reject", decision_id="d-3"))
    assert code(late) == "already_decided" and "d-1" in late[0][1]["error"]["message"]


def test_a_supervisor_supersedes_and_the_records_say_so() -> None:
    rv = review()
    desk = Desk(rv, keys=(KEY,))
    [referral] = [r for n, r in desk.send(real(rv)) if n == "referrals"]
    assert referral["review"]["role"] == "reviewer"
    assert referral["evidence"]["chain_of_custody"][-2]["detail"]["role"] == "reviewer"
    change = {"decision": "reject", "decision_id": "d-2", "supersedes": "d-1", "reason": "satire"}
    assert code(desk.send(real(rv, **change))) == "invalid_decision", "a reviewer may not supersede"
    out = desk.send(real(rv, **change, role="supervisor"))
    assert topics(out) == ["cleared", "examples", "hashbank"]
    assert out[0][1]["review"]["role"] == "supervisor" and out[0][1]["review"]["supersedes"] == "d-1"
    assert out[1][1]["review"]["role"] == "supervisor"


def test_replaying_a_signed_decision_changes_nothing() -> None:
    """What docs/operators.md says: whoever copies a signed decision can only send it again, and
    a decision is idempotent by its decision_id."""
    rv = review()
    desk = Desk(rv, keys=(KEY,))
    first = real(rv)
    assert topics(desk.send(first))[0] == "referrals"
    assert desk.send(first) == []
    assert desk.metrics.decision_replays._value.get() == 1
    desk.send(real(rv, decision="reject", decision_id="d-2", supersedes="d-1", role="supervisor"))
    assert code(desk.send(first)) == "already_decided", "a superseded decision does not come back"
