"""MIG instances cost their share of the GPU (docs/definitions.md 6.2): a store that attributed MIG
GPU-hours before is marked for a rebuild of its stored attribution (the service does it at start,
`finops db reattribute` otherwise; until then reports attribute on the fly). No schema change.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE attr_state SET complete = false, resume_from = NULL "
               "WHERE id = 1 AND EXISTS (SELECT 1 FROM attr_gpu WHERE mig_profile IS NOT NULL AND mig_profile <> '')")


def downgrade() -> None:
    """Nothing to undo: the stored attribution is rebuilt under whichever code runs."""
