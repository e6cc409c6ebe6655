"""Audit: the hash chain, record hashes, verification findings and audit bundles (pure)."""
