"""Money: grants and rate cards, exact charges, the ledger with closed periods, statements
and quotes (pure)."""
