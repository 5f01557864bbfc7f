"""Bank files: JSON Lines of entries (record or text form), validated whole before any is applied."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from streams import safejson
from streams.known_content.entry import OPS, BankError, Update, parse_entry
from streams.known_content.index import HashBank
from streams.records import utc_now


class BankFileError(ValueError):
    """A bank file that cannot be read; ``str()`` is ``"path:line: reason"`` (or ``"path: reason"``)."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


def read_bank_file(
    path: str | Path,
    *,
    default_source: Mapping[str, Any] | None = None,
    ops: Collection[str] = OPS,
    now: str | None = None,
) -> list[Update]:
    """Every line of a JSON Lines bank file (record or text form, see :func:`parse_entry`),
    validated before any is returned. Blank lines are skipped. Lines of text form without a
    source get ``default_source`` (else ``{"type": "import", "name": <file name>}``); all share
    one ``added_at`` when they give none. Raises :class:`BankFileError` on the first bad line.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BankFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    source = default_source or {"type": "import", "name": Path(path).name}
    now = now or utc_now()
    updates: list[Update] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        data = safejson.parse(line)
        if isinstance(data, safejson.NotJson):
            raise BankFileError(path, number, data.message)
        if safejson.lone_surrogate(data):
            raise BankFileError(path, number, "escapes an unpaired UTF-16 surrogate, which is not text")
        parsed = parse_entry(data, default_source=source, now=now)
        if isinstance(parsed, BankError):
            raise BankFileError(path, number, str(parsed))
        if parsed[0] not in ops:
            raise BankFileError(path, number, f"op: {parsed[0]!r} is not accepted here")
        updates.append(parsed)
    return updates


def load_bank_file(path: str | Path, bank: HashBank) -> int:
    """Apply a bank file to ``bank``, all or nothing, and return how many lines were applied.
    Raises :class:`BankFileError` with ``path:line: reason`` on the first bad line."""
    updates = read_bank_file(path)
    for update in updates:
        bank.apply(update, always=True)
    return len(updates)


def bank_file_records(path: str | Path, *, source_name: str | None = None) -> list[dict[str, Any]]:
    """The ``hashbank`` topic records for a bank file's entries (adds only, hashes only), for
    ``propwatch hashbank add``. Text-form lines without a source get
    ``{"type": "import", "name": source_name or <file name>}``. Raises :class:`BankFileError`."""
    source = {"type": "import", "name": source_name or Path(path).name}
    updates = read_bank_file(path, default_source=source, ops=("add",))
    return [update[1].as_record() for update in updates if update[0] == "add"]
