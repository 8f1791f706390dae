"""JSON log lines for the journal, and the redaction every line goes through."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from edge_agent.logs import JsonFormatter, RedactFilter, configure_logging, redact


@contextmanager
def root_logger_restored() -> Iterator[None]:
    """Whatever the block configures, the root logger's handlers and level are put back."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        logging.captureWarnings(False)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON into a buffer; the previous handlers are put back."""
    with root_logger_restored():
        buffer = io.StringIO()
        configure_logging("DEBUG", "json", stream=buffer)
        yield buffer


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_record_is_one_json_object_with_its_extras(captured: io.StringIO) -> None:
    logging.getLogger("edge_agent.test").info(
        "sale %s: %s L", "S001-fdc-7", "12.34", extra={"pump": 3, "grade": "92"}
    )
    (entry,) = lines(captured)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "edge_agent.test"
    assert entry["message"] == "sale S001-fdc-7: 12.34 L"
    assert (entry["pump"], entry["grade"]) == (3, "92")
    assert str(entry["ts"]).endswith("+00:00")
    assert set(entry) == {"ts", "level", "logger", "message", "pump", "grade"}


def test_a_traceback_is_kept_in_exc_and_redacted(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("cloud said no to Bearer abc.def-123 for 13800138000")
    except RuntimeError:
        logging.getLogger("x").exception("sync failed")
    (entry,) = lines(captured)
    assert entry["level"] == "ERROR"
    assert "RuntimeError" in str(entry["exc"])
    assert "abc.def-123" not in str(entry["exc"])
    assert "13800138000" not in str(entry["exc"])
    assert "138****8000" in str(entry["exc"])


def test_tokens_and_phones_never_reach_a_line(captured: io.StringIO) -> None:
    log = logging.getLogger("edge_agent.test")
    log.info("GET /api?token=%s&limit=5", "sup3r-s3cret")
    log.warning("headers: %s", {"Authorization": "Bearer eyJhbGciOi.J9x_y-z"})
    log.info("member +86 139 1234 5678 attached", extra={"phone": "13912345678"})
    log.info("uvicorn style %s", ("127.0.0.1:5000", "GET", "/m?phone=15012345678"))
    text = captured.getvalue()
    for secret in ("sup3r-s3cret", "eyJhbGciOi", "13912345678", "1391234", "15012345678"):
        assert secret not in text
    entries = lines(captured)
    assert entries[0]["message"] == "GET /api?token=***&limit=5"
    assert entries[2]["message"] == "member +86 139****5678 attached"
    assert entries[2]["phone"] == "139****5678"


@pytest.mark.parametrize(
    ("spelled", "masked"),
    [
        ("13800138000", "138****8000"),
        ("+8613800138000", "+86138****8000"),
        ("+86 138 0013 8000", "+86 138****8000"),
        ("+86-138-0013-8000", "+86-138****8000"),
        ("0086 13800138000", "0086 138****8000"),
        ("86 13800138000", "86 138****8000"),
        ("138-0013-8000", "138****8000"),
        ("phone=19912345678;", "phone=199****5678;"),
    ],
)
def test_a_mobile_number_is_masked_in_every_spelling(spelled: str, masked: str) -> None:
    assert redact(f"member {spelled} ok") == f"member {masked} ok"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.DEF-123_x", "Authorization: Bearer ***"),
        ("token=abc123 and more", "token=*** and more"),
        ('{"token": "abc123", "n": 1}', '{"token": "***", "n": 1}'),
        ("admin_token: xyz", "admin_token: ***"),
        ("password=hunter2&next=/", "password=***&next=/"),
        ('passphrase = "my secret phrase"', 'passphrase = "***"'),
        ("passphrase = 'my secret phrase' ok", "passphrase = '***' ok"),
        ('{"password": "two words", "n": 1}', '{"password": "***", "n": 1}'),
        ("{'secret': 'a, b; c}', 'n': 1}", "{'secret': '***', 'n': 1}"),
        (r'token="say \"hi there\"" next', 'token="***" next'),
        ('token="never closed and more', 'token="***"'),
        ("pin=1234 ok", "pin=*** ok"),
        ("token=a.b-c~d/e+f= rest", "token=*** rest"),
    ],
)
def test_secrets_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "station S001 running with 2 driver(s): fdc, bus1",
        "sale 0193a2b4-7c1d-7e00-8a00-000000000001: fuelling point 3 nozzle 1 12.34 L 95.10 yuan",
        "backlog 12345678901234 events",  # a longer run of digits is not a phone
        "seq 12345678901 acknowledged",  # 11 digits, but not a mobile prefix
        "already masked 138****8000",
        "the pin pad spins",
    ],
)
def test_an_ordinary_message_is_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        'passphrase = "alpha bravo charlie"',
        "password: 'alpha bravo charlie'",
        "secret=alpha-bravo-charlie x",
    ],
)
def test_no_word_of_a_secret_survives_and_masking_twice_changes_nothing(text: str) -> None:
    once = redact(text)
    for word in ("alpha", "bravo", "charlie"):
        assert word not in once
    assert redact(once) == once


def test_one_record_is_redacted_once_for_several_handlers() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("13800138000",), None)
    first, second = RedactFilter(), RedactFilter()
    assert first.filter(record) and second.filter(record)
    assert record.getMessage() == "phone 138****8000"
    assert json.loads(JsonFormatter().format(record))["message"] == "phone 138****8000"


def test_text_format_and_auto_on_a_pipe() -> None:
    with root_logger_restored():
        text = io.StringIO()
        configure_logging("INFO", "text", stream=text)
        logging.getLogger("t").info("token=abc")
        assert text.getvalue().rstrip().endswith("INFO t: token=***")
        piped = io.StringIO()  # not a terminal: auto means JSON
        configure_logging("INFO", "auto", stream=piped)
        logging.getLogger("t").debug("hidden")
        logging.getLogger("t").info("shown")
        assert [json.loads(line)["message"] for line in piped.getvalue().splitlines()] == ["shown"]
