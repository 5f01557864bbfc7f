"""The transparency report: what the pipeline decided over a period, read back from its topics.

The figures feed the transparency reports of the EU TCO Regulation (2021/784): Art. 7 for hosting
service providers, Art. 8 for competent authorities such as an Internet Referral Unit. They cover
what propwatch sees (referrals, clearances, human review, known-content matches, processing
failures); removal orders, complaints and penalties are recorded elsewhere and are not in it.

Three steps, one module each, and the figures they share:

- :mod:`~streams.reporting.read`: every record of the output topics from a broker
  (:func:`~streams.reporting.read.read_topics`), skipping and counting values that are not JSON
  objects;
- :mod:`~streams.reporting.build`: :func:`build_report` turns those records into a
  :class:`Report` without a broker (pure, so unit tests need none). It reads each record once, as
  a typed view of the fields it counts (:mod:`~streams.reporting.views`: lenient, so that
  version 2 records and values this release does not know are still counted);
- :mod:`~streams.reporting.render`: :func:`format_markdown` renders a report for publication;
- :mod:`~streams.reporting.figures`: :class:`Report` and its parts; :meth:`Report.as_json` gives
  the figures to programs, and :func:`parse_when` reads a period's bounds.

Delivery is at-least-once, so the same record can be read more than once. Every count is after
de-duplication: referrals by ``referral_id``, cleared and review records by ``item_id`` (a later
verdict of the same item wins), reviewers' decisions by ``decision_id``, dead letters by the input
message they stand for (``source`` topic, partition and offset).
"""

from streams.reporting.build import build_report
from streams.reporting.figures import Report, parse_when
from streams.reporting.render import format_markdown

__all__ = ["Report", "build_report", "format_markdown", "parse_when"]
