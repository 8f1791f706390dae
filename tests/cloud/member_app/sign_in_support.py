"""Signing in to the member app as a person would: ask for a code, read it where the `log`
gateway wrote it (`<data_dir>/member_messages.log`, one JSON object a line), send it back.

The browser tests read the code the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cloud_sync.cloud.member_app.gateway import MESSAGES_FILE
from cloud_sync.core.identity import normalize_phone

__all__ = ["API", "ask_code", "last_code", "messages", "sign_in"]

API = "/m/api/v1"
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


def messages(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / MESSAGES_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def last_code(data_dir: Path, phone: str) -> str:
    """The code in the newest message to `phone` (any spelling of it)."""
    wanted = normalize_phone(phone)
    for message in reversed(messages(data_dir)):
        if message["phone"] == wanted:
            found = _CODE.search(message["text"])
            assert found is not None, message
            return found.group(1)
    raise AssertionError(f"no message to {wanted}")


def ask_code(client: TestClient, data_dir: Path, phone: str) -> str:
    answer = client.post(f"{API}/otp", json={"phone": phone})
    assert answer.status_code == 202, answer.text
    return last_code(data_dir, phone)


def sign_in(client: TestClient, data_dir: Path, phone: str, **more: Any) -> dict[str, Any]:
    """Ask for a code and trade it for tokens; the answer's JSON (asserted 200)."""
    code = ask_code(client, data_dir, phone)
    answer = client.post(f"{API}/session", json={"phone": phone, "code": code, **more})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
