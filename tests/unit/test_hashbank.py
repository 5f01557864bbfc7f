"""The known-content hash bank: normalisation, signatures, matching, records and bank files.

Every text here is synthetic and non-operational; the group and places are fictional.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from streams.cli import EXIT_USAGE, main
from streams.known_content.entry import BankError, Entry, parse_entry, remove_record
from streams.known_content.files import BankFileError, bank_file_records, load_bank_file, read_bank_file
from streams.known_content.index import HashBank, Match
from streams.known_content.signature import NUM_PERM, normalise, normalised_sha256, signature
from streams.records import load_schema

POST = (
    "The Northern Dawn Brigade says the harvest festival in Valemoor will be remembered forever. "
    "Stand with the brigade, share this message and wear the grey ribbon on Friday."
)
NEWS = (
    "Reporters in Valemoor say a group calling itself the Northern Dawn Brigade urged residents to wear "
    "grey ribbons during the harvest festival; police are looking into the message."
)
UNRELATED = (
    "The Valemoor library extends its opening hours during the harvest festival, with readings for "
    "children every afternoon."
)
ADDED_AT = "2026-11-01T00:00:00Z"


def entry(
    text: str = POST,
    entry_id: str = "e1",
    labels: tuple[str, ...] = ("recruitment",),
    source: dict[str, Any] | None = None,
) -> Entry:
    return Entry.from_text(
        text, entry_id=entry_id, labels=labels, source=source or {"type": "import"}, added_at=ADDED_AT
    )


def bank_of(*entries: Entry, threshold: float = 0.8) -> HashBank:
    bank = HashBank(threshold)
    for e in entries:
        bank.add(e)
    return bank


def validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema("hashbank"), format_checker=FormatChecker())


# --- normalisation and signatures ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Hello,   WORLD!!", "hello world"),
        ("  join_us\t\nnow  ", "join us now"),
        ("see https://example.org/a?b=1 and www.example.org/x now", "see and now"),
        ("HTTPS://EXAMPLE.ORG/PATH end", "end"),
        ("awww.nice", "awww nice"),  # not a URL
        ("\uff26\uff35\uff2c\uff2c width ½", "full width 1 2"),  # NFKC: fullwidth letters, fractions
        ("Straße", "strasse"),  # case folding, not just lower()
        ("dawn 🌅🔥 brigade ❤️", "dawn brigade"),  # emoji and their variation selectors
        ("café — été", "café été"),
        ("हिंदी पाठ", "हिंदी पाठ"),  # vowel signs stay with their letters
        ("🔥!!! ...", ""),
    ],
)
def test_normalise(text: str, normalised: str) -> None:
    assert normalise(text) == normalised


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


def test_normalised_hash_ignores_case_punctuation_whitespace_and_urls() -> None:
    variants = [
        POST.upper(),
        POST.replace(" ", "   ").replace(",", "").replace(".", "!!!"),
        "🔥 " + POST + " https://example.org/share?id=7 🔥",
        POST.replace(" ", "\n") + " www.example.org",
    ]
    assert {normalised_sha256(v) for v in variants} == {normalised_sha256(POST)}
    assert normalised_sha256(POST + " again") != normalised_sha256(POST)


def test_signatures_are_stable_across_processes_and_versions() -> None:
    """Pinned values: signatures travel between workers and files, so any change to the
    normalisation or the MinHash parameters must show up here (and needs a new NORMALISATION)."""
    sig = signature(POST)
    assert sig.normalised_sha256 == "6c648877d75ccaeb969fee3ec3f7be6bf6ea86ba4dac11173ab8d1e05942f0aa"
    assert sig.minhash is not None and len(sig.minhash) == NUM_PERM
    assert sig.minhash[:4] == (48476220, 76862293, 30391153, 23258835)
    assert signature(POST).minhash == sig.minhash, "two signatures of one text are equal"


def test_short_texts_are_one_shingle() -> None:
    sig = signature("Hi!")
    assert sig.normalised == "hi" and sig.minhash is not None
    assert signature("🔥").empty and signature("🔥").minhash is None


# --- matching -------------------------------------------------------------------------------


def test_exact_match_through_case_punctuation_whitespace_and_urls() -> None:
    bank = bank_of(entry(labels=("recruitment", "incitement")))
    match = bank.match("  " + POST.upper().replace(",", " ,, ") + "\n\nhttps://example.org/x")
    assert match == Match("exact", "e1", 1.0, ("incitement", "recruitment"))
    assert match.as_json() == {
        "type": "exact",
        "entry_id": "e1",
        "similarity": 1.0,
        "labels": ["incitement", "recruitment"],
    }


def test_an_exact_match_computes_no_minhash() -> None:
    bank = bank_of(entry())
    sig = signature(POST.lower())
    assert bank.match_signature(sig) is not None
    assert "minhash_object" not in vars(sig), "the MinHash is computed only when the hash misses"


@pytest.mark.parametrize(
    "text, similarity",
    [
        (POST + " Everyone.", 0.9531),  # a word appended
        (POST.replace("Friday", "Sunday"), 0.9141),  # a word changed
        (POST.replace("Friday", "Sunday") + " Everyone.", 0.875),  # both
    ],
)
def test_near_match_of_a_light_edit(text: str, similarity: float) -> None:
    match = bank_of(entry()).match(text)
    assert match is not None and match.type == "near" and match.entry_id == "e1"
    assert match.similarity == similarity and match.labels == ("recruitment",)


@pytest.mark.parametrize("text", [UNRELATED, NEWS], ids=["unrelated", "news-report-about-it"])
def test_no_match_for_other_texts(text: str) -> None:
    assert bank_of(entry()).match(text) is None


def test_the_threshold_decides_near_matches() -> None:
    edit = POST.replace("Friday", "Sunday")  # estimated similarity 0.9141
    assert bank_of(entry(), threshold=0.95).match(edit) is None
    assert bank_of(entry(), threshold=0.9).match(edit) is not None
    assert bank_of(entry(), threshold=1.0).match(POST.lower()) is not None, "exact still matches"


def test_the_best_near_match_wins() -> None:
    near = entry(POST + " Everyone tonight.", entry_id="near")
    nearer = entry(POST + " Everyone.", entry_id="nearer", labels=("threat",))
    match = bank_of(near, nearer, entry(UNRELATED, entry_id="other")).match(POST + " Everyone!")
    assert match is not None and (match.type, match.entry_id, match.labels) == (
        "exact",
        "nearer",
        ("threat",),
    )
    match = bank_of(near, nearer).match(POST + " Everyone now.")
    assert match is not None and match.type == "near" and match.entry_id == "nearer"


def test_every_match_best_first() -> None:
    """``matches`` lists the exact matches in the order added, then the near ones by similarity;
    its first is what ``match`` answers; ``ignore_item`` and ``limit`` hold."""
    near = entry(POST + " Everyone tonight at the square.", entry_id="near")
    nearer = entry(POST + " Everyone now.", entry_id="nearer")
    same = entry(POST.upper() + " EVERYONE!", entry_id="same", source={"type": "import", "item_id": "i1"})
    bank = bank_of(near, same, nearer, entry(UNRELATED, "x"))
    sig = signature(POST + " Everyone")
    found = bank.matches(sig)
    assert [(m.type, m.entry_id) for m in found] == [("exact", "same"), ("near", "nearer"), ("near", "near")]
    assert found[1].similarity > found[2].similarity >= bank.threshold
    assert bank.matches(sig, limit=2) == found[:2]
    assert bank.match(POST + " Everyone") == found[0]
    assert [m.entry_id for m in bank.matches(sig, ignore_item="i1")] == ["nearer", "near"]
    assert bank.matches(signature("🔥 🔥")) == []


def test_an_entry_without_minhash_matches_exactly_only() -> None:
    sig = signature(POST)
    hashes_only = Entry("h", sig.normalised_sha256, None, ("threat",), {"type": "import"}, ADDED_AT)
    bank = bank_of(hashes_only)
    assert bank.match(POST.upper()) == Match("exact", "h", 1.0, ("threat",))
    assert bank.match(POST + " Everyone.") is None


def test_empty_text_matches_nothing() -> None:
    assert bank_of(entry()).match("🔥🔥 ... https://example.org") is None


def test_remove() -> None:
    bank = bank_of(entry(), entry(UNRELATED, entry_id="other"))
    assert bank.remove("e1") is True and bank.remove("e1") is False
    assert len(bank) == 1 and "e1" not in bank and "other" in bank
    assert bank.match(POST) is None and bank.match(POST + " Everyone.") is None
    assert bank.match(UNRELATED) is not None


def test_adding_an_entry_id_again_replaces_it() -> None:
    bank = bank_of(entry(labels=("threat",)))
    bank.add(entry(UNRELATED, labels=("incitement",)))
    assert len(bank) == 1 and bank.match(POST) is None
    assert bank.match(UNRELATED) == Match("exact", "e1", 1.0, ("incitement",))


def test_entries_with_the_same_text_are_removed_independently() -> None:
    bank = bank_of(entry(entry_id="first"), entry(POST.upper(), entry_id="second", labels=("threat",)))
    assert len(bank) == 2
    match = bank.match(POST)
    assert match is not None and match.entry_id == "first", "the earliest added wins"
    bank.remove("first")
    assert bank.match(POST) == Match("exact", "second", 1.0, ("threat",))
    near = bank.match(POST + " Everyone.")
    assert near is not None and near.entry_id == "second"
    bank.add(entry(entry_id="first"))
    bank.remove("second")
    match = bank.match(POST)
    assert match is not None and match.entry_id == "first"
    bank.remove("first")
    assert len(bank) == 0 and bank.match(POST) is None


def test_entries_learned_from_an_item_do_not_match_that_item() -> None:
    learned = entry(source={"type": "referral", "referral_id": "r1", "item_id": "item-7"})
    bank = bank_of(learned)
    assert bank.match(POST, ignore_item="item-7") is None
    assert bank.match(POST + " Everyone.", ignore_item="item-7") is None
    assert bank.match(POST, ignore_item="item-8") is not None


def test_the_threshold_must_be_a_similarity() -> None:
    for threshold in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            HashBank(threshold)


# --- entries and records ----------------------------------------------------------------------


def test_records_carry_hashes_only_and_match_the_schema() -> None:
    e = entry(labels=("threat", "incitement"))
    record = e.as_record()
    assert record["schema_version"] == 2 and record["op"] == "add"
    assert record["labels"] == ["incitement", "threat"], "taxonomy order"
    assert POST not in json.dumps(record) and "text" not in record
    records = [
        record,
        e.as_record(op="remove"),
        remove_record("e1"),
        Entry(
            "h", e.normalised_sha256, None, ("threat",), {"type": "import", "name": "x"}, ADDED_AT
        ).as_record(),
    ]
    for r in records:
        validator().validate(r)


@pytest.mark.parametrize(
    "change",
    [
        {"labels": []},
        {"labels": ["propaganda"]},
        {"minhash": [1, 2, 3]},
        {"minhash": [-1] * NUM_PERM},
        {"normalised_sha256": "ABC"},
        {"source": {"type": "scraped"}},
        {"added_at": "yesterday"},
        {"op": "update"},
        {"text": "never in a record"},
    ],
)
def test_the_schema_rejects_bad_records(change: dict[str, Any]) -> None:
    record = {**entry().as_record(), **change}
    assert list(validator().iter_errors(record)), change
    assert isinstance(parse_entry(record), BankError), "the parser agrees with the schema"


def test_records_round_trip() -> None:
    e = entry(source={"type": "referral", "referral_id": "r1", "item_id": "i1"})
    assert parse_entry(json.loads(json.dumps(e.as_record()))) == ("add", e)
    assert parse_entry(remove_record("e1")) == ("remove", "e1")
    assert parse_entry(e.as_record(op="remove")) == ("remove", "e1")


def test_the_text_form_is_hashed_and_defaulted() -> None:
    parsed = parse_entry({"entry_id": "t1", "text": POST, "labels": ["recruitment"]}, now=ADDED_AT)
    assert parsed == ("add", entry(entry_id="t1"))
    parsed = parse_entry(
        {"entry_id": "t1", "text": POST, "labels": ["threat"]},
        default_source={"type": "import", "name": "ngo-list"},
    )
    assert not isinstance(parsed, BankError) and parsed[0] == "add"
    added = parsed[1]
    assert isinstance(added, Entry)
    assert added.source == {"type": "import", "name": "ngo-list"} and added.added_at.endswith("Z")


@pytest.mark.parametrize(
    "data, field, words",
    [
        ([1, 2], "record", "JSON object"),
        ({"entry_id": "t", "text": POST}, "labels", "required"),
        ({"entry_id": "t", "text": POST, "labels": []}, "labels", "at least one"),
        ({"entry_id": "t", "text": POST, "labels": ["Threat"]}, "labels", "unknown label(s) Threat"),
        ({"entry_id": "t", "text": POST, "labels": "threat"}, "labels", "list"),
        ({"entry_id": "t", "text": "🔥 ... !!", "labels": ["threat"]}, "text", "no letters or digits"),
        ({"entry_id": "t", "text": 5, "labels": ["threat"]}, "text", "string"),
        ({"entry_id": " t", "text": POST, "labels": ["threat"]}, "entry_id", "whitespace"),
        ({"entry_id": "", "text": POST, "labels": ["threat"]}, "entry_id", "non-empty"),
        ({"text": POST, "labels": ["threat"]}, "entry_id", "required"),
        ({"entry_id": "t", "text": POST, "labels": ["threat"], "lable": 1}, "lable", "unknown field"),
        ({"entry_id": "t", "text": POST, "labels": ["threat"], "op": "remove"}, "op", "only add"),
        ({"entry_id": "t", "text": POST, "labels": ["threat"], "added_at": "2026-11-01"}, "added_at", "RFC"),
        ({"entry_id": "t", "text": POST, "labels": ["threat"], "source": {"type": "x"}}, "source", "type"),
        ({"entry_id": "t", "text": POST, "labels": ["threat"], "schema_version": 1}, "schema_version", "2"),
        ({"entry_id": "t", "text": POST, "normalised_sha256": "0" * 64}, "text", "not both"),
        ({"schema_version": 2, "op": "add", "entry_id": "t"}, "labels", "required"),
        ({"schema_version": 2, "op": "add", "entry_id": "t", "labels": ["threat"]}, "normalised_sha256", ""),
        ({"op": "remove", "entry_id": "t"}, "schema_version", "must be 2"),
        ({"schema_version": 2, "op": "remove", "entry_id": "t", "minhash": [True] * 128}, "minhash", ""),
    ],
)
def test_parse_errors_name_the_field(data: object, field: str, words: str) -> None:
    error = parse_entry(data)
    assert isinstance(error, BankError), error
    assert error.field == field and words in str(error) and str(error).startswith(f"{field}: ")


def test_a_record_of_empty_text_is_rejected() -> None:
    record = {**entry().as_record(), "normalised_sha256": normalised_sha256("!!!")}
    error = parse_entry(record)
    assert isinstance(error, BankError) and error.field == "normalised_sha256"


def test_apply_record_skips_invalid_records() -> None:
    bank = HashBank()
    assert bank.apply_record(json.dumps(entry().as_record()).encode()) is None and len(bank) == 1
    error = bank.apply_record(b'{"op": "add"}')
    assert isinstance(error, str) and "schema_version" in error and len(bank) == 1
    assert bank.apply_record(json.dumps(remove_record("e1")).encode()) is None and len(bank) == 0


@pytest.mark.parametrize(
    "value, words",
    [
        (b"[" * 1000 + b"]" * 1000, "nested deeper"),
        (b'{"op": "add", "schema_version": ' + b"9" * 5000 + b"}", "digits"),
        (b"\xff\xfe", "UTF-8"),
        (None, "null"),
        (b'{"schema_version": 2, "op": "remove", "entry_id": "a\\ud800"}', "surrogate"),
    ],
)
def test_apply_record_never_raises_on_hostile_bytes(value: bytes | None, words: str) -> None:
    bank = bank_of(entry())
    error = bank.apply_record(value)
    assert error is not None and words in error and len(bank) == 1


def test_an_entry_id_with_a_lone_surrogate_or_control_character_is_refused() -> None:
    for bad in ("a\ud800", "a\x1bb", "a\nb"):
        error = parse_entry({**entry().as_record(), "entry_id": bad})
        assert isinstance(error, BankError) and error.field == "entry_id", bad


# --- bank files and the CLI ------------------------------------------------------------------


def write_lines(path: Path, lines: list[object | str]) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_load_bank_file_with_both_forms(tmp_path: Path) -> None:
    record = entry(UNRELATED, entry_id="from-record", labels=("threat",)).as_record()
    path = write_lines(
        tmp_path / "bank.jsonl",
        [
            {"entry_id": "from-text", "text": POST, "labels": ["recruitment"]},
            "",
            record,
            "   ",
            {"entry_id": "gone", "text": "Another fictional slogan", "labels": ["threat"]},
            remove_record("gone"),
        ],
    )
    bank = HashBank()
    assert load_bank_file(path, bank) == 4
    assert len(bank) == 2
    assert bank.match(POST.upper()) == Match("exact", "from-text", 1.0, ("recruitment",))
    assert bank.match(UNRELATED) == Match("exact", "from-record", 1.0, ("threat",))
    loaded = bank.get("from-text")
    assert loaded is not None and loaded.source == {"type": "import", "name": "bank.jsonl"}


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ({"entry_id": "b", "text": POST, "labels": ["propaganda"]}, "labels: unknown label(s) propaganda"),
        ('{"entry_id": "b", ', "not JSON"),
        ('{"entry_id": "b", "text": "x", "labels": [' + "[" * 100 + "]" * 100 + "]}", "nested deeper"),
        ("[1]", "record: must be a JSON object"),
    ],
)
def test_a_bad_line_fails_the_whole_file(tmp_path: Path, bad_line: object, reason: str) -> None:
    path = write_lines(
        tmp_path / "bank.jsonl", [{"entry_id": "a", "text": POST, "labels": ["threat"]}, "", bad_line]
    )
    bank = HashBank()
    with pytest.raises(BankFileError) as raised:
        load_bank_file(path, bank)
    assert str(raised.value).startswith(f"{path}:3: {reason}")
    assert raised.value.line == 3 and len(bank) == 0, "nothing is applied from a bad file"


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(BankFileError, match=r"missing\.jsonl: cannot read"):
        read_bank_file(tmp_path / "missing.jsonl")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"entry_id": "a", "text": "caf\xe9", "labels": ["threat"]}\n')
    with pytest.raises(BankFileError, match=r"latin1\.jsonl:1: not valid UTF-8"):
        read_bank_file(path)


def test_bank_file_records_carry_no_text(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "ngo.jsonl",
        [
            {"entry_id": "t1", "text": POST, "labels": ["recruitment"]},
            {
                "entry_id": "t2",
                "text": UNRELATED,
                "labels": ["threat"],
                "source": {"type": "import", "name": "own"},
            },
            entry(NEWS, entry_id="r1").as_record(),
        ],
    )
    records = bank_file_records(path, source_name="ngo-2026-11")
    assert [r["entry_id"] for r in records] == ["t1", "t2", "r1"]
    assert [r["source"].get("name") for r in records] == ["ngo-2026-11", "own", None]
    assert records[0]["normalised_sha256"] == normalised_sha256(POST)
    assert records[0]["minhash"] == list(signature(POST).minhash or ())
    for record in records:
        validator().validate(record)
        assert "text" not in record
    assert not any(text in json.dumps(records) for text in (POST, UNRELATED, NEWS))
    assert bank_file_records(path)[0]["source"] == {"type": "import", "name": "ngo.jsonl"}


def test_bank_file_records_refuse_removals(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bank.jsonl", [remove_record("e1")])
    with pytest.raises(BankFileError, match=r"bank\.jsonl:1: op: 'remove' is not accepted"):
        bank_file_records(path)


def test_cli_hashbank_add_rejects_a_bad_file_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_lines(tmp_path / "bank.jsonl", [{"entry_id": "a", "text": POST, "labels": []}])
    assert main(["hashbank", "add", str(path), "--source", "ngo"]) == EXIT_USAGE
    assert (
        capsys.readouterr().err
        == f"{path}:1: labels: needs at least one of incitement, recruitment, instruction, threat\n"
    )
