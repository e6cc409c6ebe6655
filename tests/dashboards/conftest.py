"""The dashboard tests' fixtures (defined in ``dashboard_site``, which the tests import by that
name rather than as ``conftest``, a name other test folders use too)."""

from dashboard_site import site

__all__ = ["site"]
