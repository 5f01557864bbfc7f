"""propwatch's stream side: settings, records, topics, the Faust app and agent, metrics, the
embedded broker and the ``propwatch`` command line."""
