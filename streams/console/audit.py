"""The audit trail: who decided what, when and why, read back from the decisions topic.

One row per decision the console read (valid ones; with the decision key set, unsigned ones too,
marked so), newest first, with what became of it (:meth:`ConsoleState.status`). Exports: CSV and
JSON Lines of the same rows. Reasons are free text written by people and by whoever else can
write the topic: a CSV cell that a spreadsheet would run as a formula (one that begins with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading ``'``
(OWASP's advice on CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .state import ConsoleState, Read

COLUMNS = (
    "decided_at",
    "reviewer",
    "role",
    "decision",
    "labels",
    "reason",
    "override_reason",
    "supersedes",
    "status",
    "signed",
    "review_id",
    "item_id",
    "decision_id",
    "offset",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditRow:
    decided_at: str
    reviewer: str
    role: str | None
    decision: str
    labels: tuple[str, ...] | None
    reason: str | None
    override_reason: str | None
    supersedes: str | None
    status: str
    signed: bool | None
    review_id: str
    item_id: str | None
    decision_id: str
    offset: int

    @classmethod
    def of(cls, state: ConsoleState, read: Read) -> AuditRow:
        decision = read.decision
        review = state.review(decision.review_id)
        return cls(
            decided_at=decision.decided_at,
            reviewer=decision.reviewer,
            role=read.role,
            decision=decision.decision,
            labels=decision.labels,
            reason=decision.reason,
            override_reason=decision.override_reason,
            supersedes=decision.supersedes,
            status=state.status(read),
            signed=read.signed,
            review_id=decision.review_id,
            item_id=review.item_id if review else None,
            decision_id=decision.decision_id,
            offset=read.logged.offset,
        )

    def as_json(self) -> dict[str, object]:
        row = asdict(self)
        row["labels"] = list(self.labels) if self.labels is not None else None
        return row


def audit_rows(state: ConsoleState, reviewer: str | None = None) -> list[AuditRow]:
    """Every decision read (only ``reviewer``'s, when given), newest first (by place in the log)."""
    reads = [r for r in state.read if reviewer is None or r.decision.reviewer == reviewer]
    return [AuditRow.of(state, read) for read in reversed(reads)]


def reviewers(state: ConsoleState) -> list[str]:
    """Everyone who has a decision on the topic, sorted."""
    return sorted({read.decision.reviewer for read in state.read})


def neutralise(cell: str) -> str:
    """A CSV cell that no spreadsheet runs as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return neutralise(str(value))


def to_csv(rows: Iterable[AuditRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        data = row.as_json()
        writer.writerow([_cell(data[name]) for name in COLUMNS])
    return out.getvalue()


def to_jsonl(rows: Iterable[AuditRow]) -> str:
    """One JSON object a line. U+2028 and U+2029, which reasons may hold and which many line
    readers (Python's ``str.splitlines`` among them) take as line breaks, are escaped."""
    return "".join(_line(row.as_json()) + "\n" for row in rows)


def _line(value: object) -> str:
    # Only strings can hold these characters in JSON, where the escape is the same string.
    return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
