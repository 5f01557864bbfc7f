"""The review console: a web application on the review and decisions topics (``propwatch console``).

Referral officers see the pending reviews by priority, open one (which claims it for a few
minutes), reveal its text, read its scores and evidence, and approve or reject it; the console
writes the decision, signed when ``PROPWATCH_DECISION_KEY`` is set, to the decisions topic, and the
workers turn it into a referral or a verdict as any decision. Supervisors can supersede a
decision in force; auditors read everything, the audit trail included, and decide nothing.

- :mod:`~streams.console.app`: the app factory (:func:`build_app`), access checks, security headers;
- :mod:`~streams.console.views`: the pages and forms; :mod:`~streams.console.pages`: templates;
- :mod:`~streams.console.state`: the view of the topics (pending = no decision in force);
- :mod:`~streams.console.priority`: the queue's order; :mod:`~streams.console.claims`: who holds an item;
- :mod:`~streams.console.decide`: form → decision → signature → decisions topic;
- :mod:`~streams.console.audit`: who decided what, and its CSV and JSON Lines exports;
- :mod:`~streams.console.users`, :mod:`~streams.console.sessions`: accounts (followed as the
  users file changes), cookies, CSRF; :mod:`~streams.console.throttle`: logins refused after too
  many failures.

The console runs as **one replica**: claims live in its memory (see :mod:`~streams.console.claims`).
"""
