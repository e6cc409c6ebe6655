"""What the command line and the HTTP routes both do, written once.

Each use case takes a store connection (or the serving handle) and plain arguments, reads or
writes in one transaction, and returns the models' results; a route or a command only parses
its input and formats what comes back. ``money`` (the ledger, statements, period close,
adjustments), ``explain`` (why a factor is what it is, what-if), ``factors`` (the factors as
of a time), ``delivery`` (the factor file and SiteFactor pushes), ``compliance`` (verdict
refresh).
"""
