"""aggregator: rare-earth and university–industry news, merged, deduplicated, republished."""

__version__ = "0.1.0"

__all__ = ["__version__"]
