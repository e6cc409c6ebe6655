"""Fair-share: billing rates, decayed usage, the association tree, Fair Tree and classic
factors, explain, what-if and the published snapshots (pure)."""
