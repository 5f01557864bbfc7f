"""Human review: reviewers' decisions on review records become referrals, verdicts and examples.

Items the model scores between a review threshold and the referral threshold go to the review
topic (see :class:`streams.pipeline.processor.ContentProcessor`). A reviewer's tool reads them and
writes decisions to the decisions topic: ``{"review_id", "decision": "approve" | "reject",
"reviewer", "reason", "labels"?, "override_reason"?, "supersedes"?}``.
:class:`~streams.review.decisions.DecisionProcessor` turns each decision that applies into

- on approval, a referral (``decided_by: review``) that also joins the hash bank;
- on rejection, a cleared verdict (``decided_by: review``);
- in both cases, a labelled example on the examples topic (``propwatch evaluate --decisions``).

**Which decision applies** (:func:`~streams.review.rules.in_force`). The decisions topic has one
partition, so its log orders every decision. The first valid decision on a review is in force; a
later one applies only when it names the decision in force in ``supersedes`` (a supervisor's
correction, recorded as such in its records); any other goes to the dead-letter topic as
``already_decided``. A decision received again (the same ``decision_id``) writes nothing new. An
approval confirms labels among the review's candidates, unless it gives an ``override_reason``,
which its referral records. The rule is a function of the log, so every worker, before and after
a restart, and a redelivered decision, come to the same answer.

Every worker reads the review topic into a :class:`~streams.review.queue.ReviewQueue` and the
decisions topic into a :class:`~streams.review.log.DecisionLog` (each followed by a
:class:`~streams.kafka.follower.TopicFollower`), so any worker can decide; a review record that
this pipeline did not write (see :meth:`streams.records.Review.check`) is refused and
dead-lettered, never decided on.

**Signed decisions** (:mod:`~streams.review.signing`). With ``PROPWATCH_DECISION_KEY`` set, a
decision counts only if its ``signature`` (an HMAC-SHA256 with the key, or a previous one) signs
its fields as sent; others are dead-lettered as ``unsigned_decision``. The decision log and the
decide agent read decisions the same way (:meth:`~streams.review.log.DecisionLog.read`), so an
unsigned decision is never in force; and only a decision signed with role ``supervisor`` may
supersede.
"""
