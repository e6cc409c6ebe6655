"""Command groups of the ``fairledger`` CLI, each added to it by ``register(app)``."""
