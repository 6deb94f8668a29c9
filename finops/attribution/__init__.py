"""docs/definitions.md section 4: which cost belongs to which group, in SQL on DuckDB."""

from finops.attribution.engine import STEPS, Attribution, attribute

__all__ = ["STEPS", "Attribution", "attribute"]
