"""paybatch: bulk-create Commerce Layer external payments, exactly once."""

__version__ = "0.1.0"
