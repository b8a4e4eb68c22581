"""Users, tokens and roles against the real identity database; one token for all four services."""

import uuid

from services.advocacy.app import create_app as advocacy_app
from services.reporting.app import create_app as reporting_app
from tests.support import ADMIN_PASSWORD

STRONG = "violet harbour lantern 1987"


def test_admin_is_bootstrapped_from_the_configured_password(client):
    res = client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert res.status_code == 200
    body = res.get_json()
    assert body["token_type"] == "Bearer" and body["roles"] == ["admin"] and body["expires_in"] > 0


def test_wrong_credentials_are_refused_alike(client, users):
    for creds in ({"username": users["caseworker"], "password": "wrong-password-123"},
                  {"username": "nobody-" + uuid.uuid4().hex[:6], "password": "wrong-password-123"}):
        res = client.post("/api/v1/auth/token", json=creds)
        assert res.status_code == 401 and res.get_json()["error"]["code"] == "invalid_credentials"
    assert client.post("/api/v1/auth/token", json={"username": "x"}).status_code == 422


def test_a_token_from_one_service_works_on_all_four(settings, tokens, client, case_client, intake_server):
    for factory in (advocacy_app, reporting_app):
        other = factory(settings).test_client()
        res = other.post("/api/v1/users", json={"username": "u" + uuid.uuid4().hex[:8],
                                                "password": STRONG, "roles": ["analyst"]},
                         headers=tokens["admin"])
        assert res.status_code == 201, res.get_json()
    assert case_client.get("/api/v1/cases", headers=tokens["analyst"]).status_code == 200


def test_only_admins_create_users_and_names_are_unique(client, tokens):
    name = "user-" + uuid.uuid4().hex[:8]
    body = {"username": name, "password": STRONG, "roles": ["caseworker", "advocate"]}
    assert client.post("/api/v1/users", json=body, headers=tokens["caseworker"]).status_code == 403
    assert client.post("/api/v1/users", json=body).status_code == 401
    made = client.post("/api/v1/users", json=body, headers=tokens["admin"])
    assert made.status_code == 201
    assert made.get_json()["roles"] == ["advocate", "caseworker"] and "password" not in made.get_json()
    again = client.post("/api/v1/users", json=body, headers=tokens["admin"])
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "user_exists"
    bad = client.post("/api/v1/users", json={**body, "username": "Bad Name", "password": "short", "roles": ["boss"],
                                             "extra": 1}, headers=tokens["admin"])
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"username", "password", "roles.0", "extra"}
    login = client.post("/api/v1/auth/token", json={"username": name, "password": STRONG})
    assert login.get_json()["roles"] == ["advocate", "caseworker"]
