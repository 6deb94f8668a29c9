"""Money: the one money type (DECIMAL(38,12) in SQL and Arrow, Decimal in Python), its range, and the
currency codes a bill may use.

The store holds 12 decimals and amounts under 10^18.

DECIMAL(38,12) holds 26 digits before the point, but the store sums amounts (rollups, reports) in
the same type. No bill has a line of 10^18 or more; refusing those keeps any sum of up to 10^8
lines within the type, so one absurd line is quarantined instead of failing a whole load.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import pyarrow as pa

SQL_MONEY = "DECIMAL(38,12)"  # the store's money columns; sums and casts use it too
ARROW_MONEY = pa.decimal128(38, 12)

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


# Active ISO 4217 codes (2026). A code outside this list is quarantined as an unknown currency.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XCG XOF XPF YER ZAR ZMW ZWG""".split()
)
