"""Command groups of the ``fairledger`` CLI, each added to it by ``register(app)``; what they
share (settings, store, ``--as-of``, factors, exit statuses) is in ``api.commands.context``."""
