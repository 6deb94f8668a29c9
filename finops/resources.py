"""Resource keys: one lower-case short id per billed resource, shared by bills and telemetry.

A bill names an EC2 instance `arn:aws:ec2:us-east-1:123:instance/i-0abc` or `i-0abc`, an Azure VM
`/subscriptions/.../virtualMachines/vm-3`; telemetry names it `i-0abc` or `vm-3` (or a host name
that the inventory maps). The key is the last path segment, lower-cased, so the three meet.
"""

from __future__ import annotations

# The same rule in SQL, for DuckDB-side parsing; `{col}` is a column expression from our own code.
RESOURCE_KEY_SQL = (
    "CASE WHEN {col} IS NULL OR trim({col}) = '' THEN NULL "
    "WHEN position('/' IN trim({col})) > 0 THEN lower(regexp_extract(trim({col}), '[^/]+$')) "
    "WHEN starts_with(lower(trim({col})), 'arn:') THEN lower(regexp_extract(trim({col}), '[^:]+$')) "
    "ELSE lower(trim({col})) END"
)


def resource_key(resource_id: str | None) -> str | None:
    """`arn:...:instance/i-0ABC` -> `i-0abc`; `/subscriptions/.../vm-3` -> `vm-3`; None stays None."""
    if resource_id is None or not resource_id.strip():
        return None
    rid = resource_id.strip()
    if "/" in rid:
        return rid.rsplit("/", 1)[1].lower() or None
    if rid.lower().startswith("arn:"):
        return rid.rsplit(":", 1)[1].lower() or None
    return rid.lower()
