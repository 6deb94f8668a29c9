"""Money as the store holds it: DECIMAL(38,12), i.e. 12 decimals, and amounts under 10^18.

DECIMAL(38,12) holds 26 digits before the point, but the store sums amounts (rollups, reports) in
the same type. No bill has a line of 10^18 or more; refusing those keeps any sum of up to 10^8
lines within the type, so one absurd line is quarantined instead of failing a whole load.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

PICO = Decimal("1e-12")
LIMIT = Decimal(10) ** 18
LIMIT_TEXT = "10^18"
# Enough digits for any DECIMAL(38,12) value: the default context (28 digits) cannot quantize
# amounts from 10^16 up to 12 decimals.
CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)


def in_range(value: Decimal) -> bool:
    """True when `value` is finite and under 10^18 in magnitude."""
    return value.is_finite() and abs(value) < LIMIT


def to_store(value: Decimal) -> Decimal:
    """`value` rounded half-even to the store's 12 decimals (exact for any in-range amount)."""
    return value.quantize(PICO, context=CONTEXT)
