"""A key pasted into a URL never reaches the server's access log in clear."""

from __future__ import annotations

import logging

import pytest

from finops.store.keys import RedactKeys

KEY = "fk_0123456789abcdef_" + "s3cr3t-" * 6


def test_access_log_line_with_a_key_in_the_query_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.uvicorn.access")
    logger.addFilter(RedactKeys())
    with caplog.at_level(logging.INFO, logger="test.uvicorn.access"):
        # uvicorn's access log formats the request line from its args, like this.
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    f"/v1/reports/weekly?api_key={KEY}", "1.1", 422)
        logger.info(f"raw message {KEY}")
    text = caplog.text
    assert KEY not in text and "s3cr3t" not in text
    assert text.count("fk_[redacted]") == 2
    assert "/v1/reports/weekly?api_key=fk_[redacted]" in text
