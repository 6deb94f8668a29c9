"""Budgets, and a log of every change to them.

A budget is a named amount per period (month or quarter) over the cost matching a filter on the
dims, with thresholds on actual and forecast spend. `budget_changes` records who changed which
budget and when; its row count also moves the reports' data version, so a cached budgets report
never outlives the budget it shows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE budgets (
        name VARCHAR PRIMARY KEY,
        filters VARCHAR NOT NULL,
        period VARCHAR NOT NULL CHECK (period IN ('month', 'quarter')),
        amount DECIMAL(38,12) NOT NULL CHECK (amount > 0),
        currency VARCHAR NOT NULL,
        actual_thresholds VARCHAR NOT NULL,
        forecast_thresholds VARCHAR NOT NULL,
        max_cost_per_1k_generated_tokens DECIMAL(38,12),
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE budget_changes (
        name VARCHAR NOT NULL,
        action VARCHAR NOT NULL CHECK (action IN ('create', 'update', 'delete')),
        key_id VARCHAR,
        changed_at TIMESTAMP NOT NULL
    )""",
]


def upgrade() -> None:
    for sql in STATEMENTS:
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP TABLE budget_changes")
    op.execute("DROP TABLE budgets")
