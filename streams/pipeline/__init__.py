"""The worker: validate → match known content → score → decide → build records → learn → send.

- :mod:`~streams.pipeline.messages`: consumed messages and outputs;
- :mod:`~streams.pipeline.slot`: one message's slot, which each step fills in;
- :mod:`~streams.pipeline.scoring`: inference in the executor, retry, the classifier contract;
- :class:`classifiers.policy.Policy`: the flag rule (the only place a score meets a threshold);
- :mod:`~streams.pipeline.builder`: records, evidence and chain of custody from a verdict (pure);
- :mod:`~streams.pipeline.learning`: learning into the hash bank, after the decision;
- :mod:`~streams.pipeline.delivery`: dead letters, the size bound, sending, delivered metrics;
- :mod:`~streams.pipeline.processor`: the orchestrator, :class:`ContentProcessor`;
- :mod:`~streams.pipeline.agents`: the Faust wiring (``install_agent``, ``Fatal``, ``InFlight``).
"""
