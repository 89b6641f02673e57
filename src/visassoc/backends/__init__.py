"""Model backends: one file per provider, all speaking the small protocol in ``base``."""
