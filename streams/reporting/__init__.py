"""The transparency report: what the pipeline decided over a period, read back from its topics.

The figures feed the transparency reports of the EU TCO Regulation (2021/784): Art. 7 for hosting
service providers, Art. 8 for competent authorities such as an Internet Referral Unit. They cover
what propwatch sees (referrals, clearances, human review, known-content matches, processing
failures); removal orders, complaints and penalties are recorded elsewhere and are not in it.

Two halves: :func:`read_topics` reads whole topics from a broker, and :func:`build_report` turns
their records into a :class:`Report` without one (pure, so unit tests need no broker).
:func:`format_markdown` renders a report for publication; :meth:`Report.as_json` gives its
figures to programs.

Delivery is at-least-once, so the same record can be read more than once. Every count is after
de-duplication: referrals by ``referral_id``, cleared and review records by ``item_id`` (a later
verdict of the same item wins), reviewers' decisions by ``decision_id``, dead letters by the input
message they stand for (``source`` topic, partition and offset).
"""
