"""The real broker refuses whoever has no credentials or no right: SASL SCRAM-SHA-512 logins, one
principal per service, and the ACL authoriser (infra/kafka/start.sh, shared/kafka_auth.py)."""

from __future__ import annotations

import os
import stat
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from shared import kafka_auth
from shared.bus import Publisher
from shared.config import CONSUMES, SERVICES, TOPICS, Settings, all_topics, dead_letter_topic
from shared.events import new_event
from shared.kafka_auth import client_options, password_path
from tests.support import read_topic, topic_size



def _forged_facts(case_id: str) -> dict:
    """A well-formed case.facts_updated (what the case service would publish), made elsewhere."""
    return new_event("case.facts_updated", producer="case", case_id=case_id,
                     payload={"consent_advocacy": "named"}, actor="someone")


def _send(options: dict, topic: str, value: bytes = b"{}") -> None:
    producer = KafkaProducer(**options, acks="all", max_block_ms=5000, request_timeout_ms=5000,
                             bootstrap_timeout_ms=5000)
    try:
        producer.send(topic, key=b"k", value=value).get(timeout=10)
    finally:
        producer.close(timeout=1)


def test_an_anonymous_client_is_refused(settings):
    """No credentials: the broker's only listener wants a SASL login, so a bare client gets nowhere."""
    with pytest.raises(KafkaError):
        _send({"bootstrap_servers": settings.kafka_bootstrap}, TOPICS["case"])
    with pytest.raises(KafkaError):
        _send({"bootstrap_servers": settings.kafka_bootstrap, "security_protocol": "SASL_PLAINTEXT",
               "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "case",
               "sasl_plain_password": "not-the-password"}, TOPICS["case"])


def test_a_service_cannot_write_another_services_topic_and_a_forgery_never_lands(settings):
    """Advocacy's principal (a compromised advocacy process) tries to publish a case.facts_updated
    widening consent on case.events: the broker refuses it and the topic does not grow."""
    before = topic_size(settings.kafka_bootstrap, TOPICS["case"])
    event = _forged_facts(f"case-{uuid.uuid4().hex[:8]}")
    forger = Publisher(settings, principal="advocacy", client_id="it-forger", max_block_ms=5000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            forger.publish(TOPICS["case"], [event])
    finally:
        forger.close()
    for service in ("intake", "reporting"):
        with pytest.raises(TopicAuthorizationFailedError):
            _send(client_options(settings, service), TOPICS["case"])
    assert topic_size(settings.kafka_bootstrap, TOPICS["case"]) == before
    assert not [r for r in read_topic(settings.kafka_bootstrap, TOPICS["case"])
                if r.value and event["event_id"].encode() in r.value]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_writes_its_own_topic_and_the_dead_letters_of_what_it_reads(settings, service):
    _send(client_options(settings, service), TOPICS[service], b"{}")
    for source in CONSUMES[service]:
        _send(client_options(settings, service), dead_letter_topic(source), b"{}")
    for other in set(TOPICS.values()) - {TOPICS[service]}:
        with pytest.raises(TopicAuthorizationFailedError):
            _send(client_options(settings, service), other)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_reads_only_what_it_consumes_in_its_own_group(settings, service):
    consumer = KafkaConsumer(**client_options(settings, service), group_id=None, bootstrap_timeout_ms=5000)
    try:
        visible = consumer.topics()
    finally:
        consumer.close()
    assert set(CONSUMES[service]) <= visible
    assert visible & {t for t in TOPICS.values() if t not in CONSUMES[service] and t != TOPICS[service]} == set()
    other_group = KafkaConsumer(**client_options(settings, service), group_id=f"not-{service}-{uuid.uuid4().hex[:4]}",
                                enable_auto_commit=False, bootstrap_timeout_ms=5000)
    try:
        tp = TopicPartition(CONSUMES[service][0], 0)
        other_group.assign([tp])
        with pytest.raises(KafkaError):
            other_group.committed(tp)
            from kafka.structs import OffsetAndMetadata
            other_group.commit({tp: OffsetAndMetadata(0, "", -1)})
    finally:
        other_group.close(autocommit=False)


def test_the_operator_reads_every_topic_and_writes_none(settings):
    consumer = KafkaConsumer(**client_options(settings, "operator"), group_id=None, bootstrap_timeout_ms=5000)
    try:
        assert set(all_topics()) <= consumer.topics()
    finally:
        consumer.close()
    before = topic_size(settings.kafka_bootstrap, TOPICS["intake"])
    with pytest.raises(KafkaError):  # refused at its first step: it may write nothing at all
        _send(client_options(settings, "operator"), TOPICS["intake"])
    assert topic_size(settings.kafka_bootstrap, TOPICS["intake"]) == before


def test_the_dead_letter_tool_cannot_move_a_services_group(settings):
    """It reads dead letters and their source topics (to check a letter against its source) and
    writes them back, but it cannot commit offsets for a service's group (make it skip or replay)."""
    consumer = KafkaConsumer(**client_options(settings, "deadletters"), group_id=None, bootstrap_timeout_ms=5000)
    try:
        visible = consumer.topics()
    finally:
        consumer.close()
    assert {dead_letter_topic(t) for t in TOPICS.values()} <= visible
    from kafka.structs import OffsetAndMetadata

    mover = KafkaConsumer(**client_options(settings, "deadletters"), group_id="case", enable_auto_commit=False,
                          bootstrap_timeout_ms=5000)
    try:
        tp = TopicPartition(TOPICS["intake"], 0)
        mover.assign([tp])
        with pytest.raises(KafkaError):
            mover.commit({tp: OffsetAndMetadata(0, "", -1)})
    finally:
        mover.close(autocommit=False)


def test_credentials_are_private_files_and_the_operators_properties_work(settings):
    for principal in kafka_auth.SUPER_USERS + kafka_auth.SCRAM_PRINCIPALS:
        mode = stat.S_IMODE(os.stat(password_path(settings, principal)).st_mode)
        assert mode == 0o600, (principal, oct(mode))
    properties = kafka_auth.client_properties_path(settings)
    assert stat.S_IMODE(os.stat(properties).st_mode) == 0o600
    text = properties.read_text()
    assert 'username="operator"' in text and "SCRAM-SHA-512" in text
    assert password_path(settings, "operator").read_text().strip() in text


def test_a_settings_password_overrides_the_file(settings):
    """A real cluster's credentials come from NRW_KAFKA_SASL_USERNAME/PASSWORD: used as given."""
    given = Settings(**{**settings.__dict__, "kafka_sasl_username": "case",
                        "kafka_sasl_password": "wrong-password-for-case"})
    with pytest.raises(KafkaError):
        _send(client_options(given, "ignored"), TOPICS["case"])
    right = Settings(**{**settings.__dict__, "kafka_sasl_username": "case",
                        "kafka_sasl_password": password_path(settings, "case").read_text().strip()})
    _send(client_options(right, "ignored"), TOPICS["case"], b"{}")
