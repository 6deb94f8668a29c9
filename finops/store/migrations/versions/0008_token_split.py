"""Attributed tokens keep vLLM V1's cached prompt tokens and prefill and decode time, so unit
economics can split a group's cost between prompt and generation and price the prefix cache.

The new columns are NULL where the server did not expose them (as in `token_daily`, 0006). The
stored attribution of a store holding attributed tokens is marked incomplete, so it is rebuilt with them (the service does it at start,
`finops db reattribute` otherwise); until then reports attribute on the fly.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (("cached_prompt_tokens", "BIGINT"), ("prefill_ms", "BIGINT"), ("decode_ms", "BIGINT"))


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.execute(f"ALTER TABLE attr_tok ADD COLUMN {name} {kind}")
    # Only a store with attributed tokens needs them again (a new store is complete as it is).
    op.execute("UPDATE attr_state SET complete = false, resume_from = NULL "
                "WHERE id = 1 AND EXISTS (SELECT 1 FROM attr_tok)")


def downgrade() -> None:
    op.execute("DROP INDEX attr_tok_day")
    for name, _ in COLUMNS:
        op.execute(f"ALTER TABLE attr_tok DROP COLUMN {name}")
    op.execute("CREATE INDEX attr_tok_day ON attr_tok (day)")
