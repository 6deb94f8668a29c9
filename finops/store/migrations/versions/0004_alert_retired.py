"""Alerts whose rule left the configuration are retired: closed without an all-clear.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alerts ADD COLUMN retired BOOLEAN NOT NULL DEFAULT false")
