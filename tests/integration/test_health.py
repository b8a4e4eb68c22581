"""Health and readiness check the real dependencies."""

import pytest

from services.advocacy.app import create_app as advocacy_app
from services.case.app import create_app as case_app
from services.intake.app import create_app as intake_app
from services.reporting.app import create_app as reporting_app
from shared.config import Settings

FACTORIES = {"intake": intake_app, "case": case_app, "advocacy": advocacy_app, "reporting": reporting_app}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_ready_when_database_and_broker_answer(name, settings):
    res = FACTORIES[name](settings).test_client().get("/readyz")
    assert res.status_code == 200
    assert res.get_json() == {"status": "ok", "service": name, "checks": {"mongo": "ok", "kafka": "ok"}}


def test_unavailable_names_the_dependency_that_is_down(settings, tmp_path):
    down = Settings(**{**settings.__dict__, "mongo_uri": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
                       "kafka_bootstrap": "127.0.0.1:2"})
    res = intake_app(down).test_client().get("/readyz")
    assert res.status_code == 503
    body = res.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["mongo"].startswith("unavailable") and body["checks"]["kafka"].startswith("unavailable")
    half = Settings(**{**settings.__dict__, "kafka_bootstrap": "127.0.0.1:2"})
    checks = case_app(half).test_client().get("/readyz").get_json()["checks"]
    assert checks["mongo"] == "ok" and checks["kafka"].startswith("unavailable")
