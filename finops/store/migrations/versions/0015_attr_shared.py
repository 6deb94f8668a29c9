"""The shared step's amounts per group and day under every shared-cost key (`attr_shared`).

Which lines the shared step splits, and between which groups, does not depend on the shared-cost
key; only the weights do. Landing keeps each group's share of those lines per day under each key
(`gpu_hours`, `tokens`, `even`), both cost bases, with `n`, the number of pieces summed; so a
report asking for another key than the stored one reads `attr_daily` with the stored key's shared
amounts swapped for its own instead of weighing the pieces again. A store holding shared pieces is
marked for a rebuild (the service does it at start, `finops db reattribute` otherwise); until then
reports attribute on the fly.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

MONEY = "DECIMAL(38,12)"


def upgrade() -> None:
    op.execute(f"""CREATE TABLE attr_shared (
        day DATE NOT NULL, shared_key VARCHAR NOT NULL,
        project VARCHAR, team VARCHAR, environment VARCHAR, model_id VARCHAR,
        amount_effective {MONEY} NOT NULL, amount_billed {MONEY} NOT NULL, n BIGINT NOT NULL
    )""")
    op.execute("CREATE INDEX attr_shared_day ON attr_shared (day)")
    # Only a store whose attribution shared lines needs them (a new store is complete as it is).
    op.execute("UPDATE attr_state SET complete = false, resume_from = NULL "
               "WHERE id = 1 AND EXISTS (SELECT 1 FROM attr_alloc WHERE step = 'shared')")


def downgrade() -> None:
    op.execute("DROP INDEX attr_shared_day")
    op.execute("DROP TABLE attr_shared")
