"""The stored attribution's cost per day and billing currency (`attr_day`), kept with `attr_line`.

A report reads its window's currencies and ingested total from it (a row per day and currency)
instead of summing the window's lines. Filled from `attr_line`; nothing is rebuilt.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

MONEY = "DECIMAL(38,12)"


def upgrade() -> None:
    op.execute(f"""CREATE TABLE attr_day (
        day DATE NOT NULL,
        billing_currency VARCHAR NOT NULL,
        cost_effective {MONEY} NOT NULL,
        cost_billed {MONEY} NOT NULL
    )""")
    op.execute("INSERT INTO attr_day SELECT day, billing_currency, sum(cost_effective), sum(cost_billed) "
               "FROM attr_line GROUP BY ALL")


def downgrade() -> None:
    op.execute("DROP TABLE attr_day")
