"""propwatch's stream side, one package per concern (see docs/architecture.md): the worker's
``pipeline``, ``known_content``, ``review``, one ``kafka`` layer, ``reporting``, typed ``records``
and the development harness ``dev``; beside them the ``propwatch`` command line, the settings, the
Faust app factory and the metrics.
"""
