"""Cost lines keep the FOCUS columns that change what a dollar means, and every `x_` column.

- `charge_class` (`Correction` marks a line correcting an earlier billing period),
  `billing_period_start`/`_end` (the period a delivery covers: a FOCUS file's scope is its content),
  `commitment_discount_status` and `_type` (`Unused` commitment is its own category),
- the bill's quantities (`consumed_quantity`/`_unit`, `pricing_quantity`/`_unit`: its own GPU-hours
  and tokens), `sku_price_id`, `sku_meter`, `sku_price_details` (JSON text), `invoice_id`,
  `contracted_cost`, `host_provider_name` (FOCUS 1.3),
- FOCUS 1.3 split cost allocation: `allocated_method_id`, `allocated_resource_id`, `allocated_tags`,
  and `split_origin`: true on a provider's origin row whose cost its allocated rows carry (the daily
  rollup leaves it out, so its dollars count once),
- `x_columns`: a JSON object of the provider's own `x_` columns, as read.

All are NULL on lines landed before, and from sources that do not carry them; nothing is rebuilt.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MONEY = QUANTITY = "DECIMAL(38,12)"  # as every amount in the store (0001)
COLUMNS = (
    ("charge_class", "VARCHAR"), ("billing_period_start", "TIMESTAMP"), ("billing_period_end", "TIMESTAMP"),
    ("commitment_discount_status", "VARCHAR"), ("commitment_discount_type", "VARCHAR"),
    ("consumed_quantity", QUANTITY), ("consumed_unit", "VARCHAR"),
    ("pricing_quantity", QUANTITY), ("pricing_unit", "VARCHAR"),
    ("sku_price_id", "VARCHAR"), ("sku_meter", "VARCHAR"), ("sku_price_details", "VARCHAR"),
    ("invoice_id", "VARCHAR"), ("contracted_cost", MONEY), ("host_provider_name", "VARCHAR"),
    ("allocated_method_id", "VARCHAR"), ("allocated_resource_id", "VARCHAR"), ("allocated_tags", "VARCHAR"),
    ("split_origin", "BOOLEAN"),
    ("x_columns", "VARCHAR"),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.execute(f"ALTER TABLE cost_lines ADD COLUMN {name} {kind}")


def downgrade() -> None:
    op.execute("DROP INDEX cost_lines_scope")
    for name, _ in COLUMNS:
        op.execute(f"ALTER TABLE cost_lines DROP COLUMN {name}")
    op.execute("CREATE INDEX cost_lines_scope ON cost_lines (source, scope)")
