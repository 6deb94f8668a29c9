"""`finops demo`: a realistic fleet fed through the real ingestion paths, then the service."""

from pathlib import Path

DEFAULT_DB = Path("finops-demo.duckdb")  # the demo's own store: it never writes into FINOPS_DB
