"""What every service's app does before touching a database: JSON errors, health, OpenAPI, auth."""

import pytest

from services.advocacy.app import create_app as advocacy_app
from services.case.app import create_app as case_app
from services.intake.app import create_app as intake_app
from services.reporting.app import create_app as reporting_app
from tests.support import offline_app

FACTORIES = {"intake": intake_app, "case": case_app, "advocacy": advocacy_app, "reporting": reporting_app}


@pytest.fixture(params=sorted(FACTORIES))
def client(request, tmp_path):
    return request.param, offline_app(FACTORIES[request.param], tmp_path).test_client()


def test_healthz_names_the_service(client):
    name, c = client
    assert c.get("/healthz").get_json() == {"status": "ok", "service": name}


def test_unknown_paths_and_methods_answer_json(client):
    _, c = client
    missing = c.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    wrong = c.delete("/healthz")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_document_lists_the_auth_routes_and_the_services_own(client):
    name, c = client
    spec = c.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/auth/token" in spec["paths"] and "/api/v1/users" in spec["paths"]
    own = {"intake": "/api/v1/reports", "case": "/api/v1/cases/{case_id}/transitions"}.get(name)
    if own:
        assert own in spec["paths"]
        body = spec["paths"][own]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in body


def test_api_routes_need_a_bearer_token_before_anything_else(client):
    name, c = client
    path = {"intake": "/api/v1/reports", "case": "/api/v1/cases"}.get(name, "/api/v1/users")
    method = c.get if name == "case" else c.post
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer not-a-token"}):
        res = method(path, json={}, headers=headers)
        assert res.status_code == 401, headers
        assert res.get_json()["error"]["code"] in ("unauthorized", "invalid_token")


@pytest.mark.parametrize("code, status, error", [
    (11600, 503, "unavailable"),  # InterruptedAtShutdown: the database is going away
    (1, 503, "unavailable"),  # InternalError: FerretDB's backend cut off (e.g. while it shuts down)
    (2, 500, "internal_error"),  # BadValue: our bug, not the database's state
])
def test_database_errors_answer_503_when_trying_again_may_help(tmp_path, code, status, error):
    from pymongo.errors import OperationFailure

    app = offline_app(case_app, tmp_path)
    app.testing = False  # let the app's error handlers answer, as in production

    def fails():
        raise OperationFailure("the database said no", code=code)

    app.add_url_rule("/boom", "boom", fails)
    res = app.test_client().get("/boom", headers={"Accept": "application/json"})
    assert res.status_code == status and res.get_json()["error"]["code"] == error
    assert "the database said no" not in res.get_data(as_text=True)
