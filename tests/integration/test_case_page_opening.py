"""A case page asked for moments before its case opens waits for it briefly, and otherwise says so
with a link to look again: no page reloads itself (axe's meta-refresh, WCAG 2.2.1)."""

from __future__ import annotations

import uuid

from services.case import web as case_web
from tests.integration.conftest import PASSWORD
from tests.support import page_login


def test_a_case_that_is_not_there_yet_answers_404_with_a_link_to_look_again(case_client, users, monkeypatch):
    monkeypatch.setattr(case_web, "OPENING_WAIT_S", 0.5)
    case_id = str(uuid.uuid4())
    page_login(case_client, users["caseworker"], PASSWORD, next_path=f"/cases/{case_id}")
    res = case_client.get(f"/cases/{case_id}")
    html = res.get_data(as_text=True)
    assert res.status_code == 404
    assert "http-equiv" not in html and "refresh" not in html.lower()
    assert f'href="/cases/{case_id}">Look again</a>' in html
    assert "look again in a moment" in html


def test_an_id_that_cannot_be_a_case_is_answered_at_once(case_client, users, monkeypatch):
    waited = []
    monkeypatch.setattr(case_web, "_when_it_opens", lambda store, case_id: waited.append(case_id))
    page_login(case_client, users["caseworker"], PASSWORD, next_path="/cases/no-such-case")
    assert case_client.get("/cases/no-such-case").status_code == 404
    assert waited == []
