"""docker-compose.cluster.yml (issue 13 point 4): the overlay that runs three Kafka brokers and a
three-member MongoDB replica set, with services that scale. The file checks run everywhere, on the
two files merged as compose merges them (PyYAML here, and `docker compose config` where the client
parses files, which needs no engine); the last test starts the cluster where a Docker engine answers,
with two case consumers (skipped with the reason elsewhere)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from pymongo.uri_parser import parse_uri

from shared.config import SERVICES, Settings
from tests.compose.compose_file import (COMPOSE_FILE, compose_plugin_missing, load, project_services,
                                        published_ports, resolved, service_env, service_secrets)
from tests.compose.conftest import (COMPOSE_STATE, TEST_HOST, compose_test_env, docker_engine_missing,
                                    make_key_files, make_test_certificates, public_urls, resolving_to_loopback)
from tests.compose.test_compose_security import KEY_HOLDERS, SERVER_ENV, _secret_like

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
START_SCRIPT = ROOT / "infra" / "kafka" / "start.sh"
REPLICA_SET_SCRIPT = ROOT / "infra" / "mongo" / "replica-set.js"
REPLICA_KEY = "mongo-replica.key"
KAFKA_NODES = ("kafka", "kafka-2", "kafka-3")
MONGO_MEMBERS = ("mongo", "mongo-2", "mongo-3")
# Who holds which key file in the cluster: docker-compose.yml's holders, the two new brokers with
# the broker's own logins, the replica set's key to its three members, and the operator's login to
# the job that initiates the set.
CLUSTER_KEY_HOLDERS = {
    **KEY_HOLDERS,
    "kafka-admin.password": KEY_HOLDERS["kafka-admin.password"] | {"kafka-2", "kafka-3"},
    "kafka-broker.password": KEY_HOLDERS["kafka-broker.password"] | {"kafka-2", "kafka-3"},
    "kafka-controller.password": KEY_HOLDERS["kafka-controller.password"] | {"kafka-2", "kafka-3"},
    "mongo-operator.password": KEY_HOLDERS["mongo-operator.password"] | {"mongo-replica-set"},
    REPLICA_KEY: set(MONGO_MEMBERS),
}


def merge(base, overlay):
    """Two compose files merged as compose merges them, for what these files use: mappings key by
    key, secrets by name, volumes by target, other lists and values replaced by the overlay's."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            if key in base and key == "secrets" and isinstance(value, list):
                out[key] = list(dict.fromkeys([*base[key], *value]))
            elif key in base and key == "volumes" and isinstance(value, list):
                targets = {str(v).split(":")[1]: v for v in [*base[key], *value]}
                out[key] = list(targets.values())
            else:
                out[key] = merge(base[key], value) if key in base else value
        return out
    return overlay


@pytest.fixture(scope="module")
def merged() -> dict:
    """The two files merged, nothing interpolated."""
    return merge(load(COMPOSE_FILE), load(CLUSTER_FILE))


def _compose_config(env: dict[str, str], *extra: Path) -> dict:
    reason = compose_plugin_missing()
    if reason:
        pytest.skip(reason)
    files = [COMPOSE_FILE, CLUSTER_FILE, *extra]
    result = subprocess.run(["docker", "compose", *(f"--file={f}" for f in files), "config", "--format", "json"],
                            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=["server", "docker-compose-config"])
def services(request, merged) -> dict:
    """The cluster's services as on a server (PyYAML, merged and interpolated) and as `docker
    compose config` makes them of the two files (skipped where the client cannot run)."""
    if request.param == "server":
        return resolved(merged, SERVER_ENV)["services"]
    return _compose_config(SERVER_ENV)["services"]


def _volume_at(service: dict, target: str) -> str | None:
    """The volume (or host path) mounted at `target`, from either compose syntax."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("target") == target:
                return volume.get("source")
        elif volume.split(":")[1] == target:
            return volume.split(":")[0]
    return None


def _command(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def test_three_kafka_brokers_with_distinct_ids_one_quorum_and_their_own_volumes(services):
    kafka = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("apache/kafka:")}
    assert sorted(kafka) == sorted(KAFKA_NODES)
    envs = {name: service_env(s) for name, s in kafka.items()}
    assert sorted(int(env["NRW_KAFKA_NODE_ID"]) for env in envs.values()) == [1, 2, 3]
    assert len({env["NRW_KAFKA_QUORUM"] for env in envs.values()}) == 1, "one quorum for the three"
    assert len({env["NRW_KAFKA_CLUSTER_ID"] for env in envs.values()}) == 1, "one cluster id for the three"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", envs["kafka"]["NRW_KAFKA_CLUSTER_ID"])
    quorum = dict(voter.split("@") for voter in envs["kafka"]["NRW_KAFKA_QUORUM"].split(","))
    for name, service in kafka.items():
        env = envs[name]
        host = service.get("hostname")
        assert host == name and env["NRW_KAFKA_NODE_ADDRESS"] == f"{host}:9092", name
        assert quorum[env["NRW_KAFKA_NODE_ID"]] == f"{host}:9093", "each voter is that node's controller"
        assert _command(service) == ["bash", "/opt/nrw/kafka/start.sh"], "the script `make run` uses"
        assert service.get("image") == services["kafka"]["image"]
        assert set(service_secrets(service)) == {"kafka-admin.password", "kafka-broker.password",
                                                 "kafka-controller.password"}, name
        assert "healthcheck" in service and f"{host}:9092" in " ".join(service["healthcheck"]["test"]), name
    data = [_volume_at(s, "/var/lib/kafka/data") for s in kafka.values()]
    assert None not in data and len(set(data)) == 3, f"each broker its own data volume: {data}"


def test_the_start_script_reads_every_setting_the_brokers_are_given(services):
    script = START_SCRIPT.read_text()
    for name in KAFKA_NODES:
        for var in service_env(services[name]):
            assert var in script, f"{name} sets {var}, which infra/kafka/start.sh does not read"
    assert "NRW_KAFKA_CLUSTER_ID" in script and "controller.quorum.voters=$quorum" in script


def test_every_topic_gets_three_replicas_and_every_client_all_three_brokers(services):
    for name in [*KAFKA_NODES, *project_services(services)]:
        assert service_env(services[name])["NRW_TOPIC_REPLICATION"] == "3", name
    for name, service in project_services(services).items():
        env = service_env(service)
        assert sorted(env["NRW_KAFKA_BOOTSTRAP"].split(",")) == sorted(f"{n}:9092" for n in KAFKA_NODES), name
        settings = Settings(topic_replication=int(env["NRW_TOPIC_REPLICATION"]))
        assert settings.topic_min_insync == 2, "a write acknowledged (acks=all) is on two brokers"


def test_mongo_is_a_three_member_replica_set_with_a_key_file_and_logins(services):
    members = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("mongo:")
               and "mongod" in _command(s)}
    assert sorted(members) == sorted(MONGO_MEMBERS)
    for name, member in members.items():
        command = _command(member)
        assert command[0] == "mongod" and "--auth" in command, name
        assert command[command.index("--replSet") + 1] == "rs0", name
        keyfile = command[command.index("--keyFile") + 1]
        # made at each start from the secret, owned by mongod's user and readable by it alone
        entry = " ".join(member["entrypoint"])
        assert f"install -m 0400 -o mongodb -g mongodb /run/secrets/{REPLICA_KEY} {keyfile}" in entry, name
        assert "exec docker-entrypoint.sh" in entry, f"{name}: the image's own entrypoint still starts mongod"
        assert service_secrets(member)[REPLICA_KEY] == f"/run/secrets/{REPLICA_KEY}", name
        assert member.get("hostname") == name and "healthcheck" in member, name
    volumes = [_volume_at(m, "/data/db") for m in members.values()]
    assert None not in volumes and len(set(volumes)) == 3, f"each member its own data volume: {volumes}"
    # only the first member makes the operator (the others receive the account from the set)
    assert {n for n, m in members.items() if "MONGO_INITDB_ROOT_USERNAME" in service_env(m)} == {"mongo"}


def test_the_replica_set_is_initiated_by_a_one_shot_job_before_the_accounts_job(services):
    job = services["mongo-replica-set"]
    env = service_env(job)
    assert job["restart"] == "no" and "/opt/nrw/mongo/replica-set.js" in _command(job)
    assert env["NRW_MONGO_MEMBERS"].split(",") == [f"{m}:27017" for m in MONGO_MEMBERS]
    assert {name: dep["condition"] for name, dep in job["depends_on"].items()} == {
        m: "service_healthy" for m in MONGO_MEMBERS}
    assert services["mongo-accounts"]["depends_on"]["mongo-replica-set"]["condition"] == "service_completed_successfully"
    script = REPLICA_SET_SCRIPT.read_text()
    assert "/run/secrets/mongo-operator.password" in script and "replSetInitiate" in script
    assert "process.env.NRW_MONGO_REPLICA_SET" in script and "process.env.NRW_MONGO_MEMBERS" in script
    # every client names the three members and the set
    for name, service in project_services(services).items():
        uri = parse_uri(service_env(service)["NRW_MONGO_URI"])
        assert sorted(f"{h}:{p}" for h, p in uri["nodelist"]) == sorted(env["NRW_MONGO_MEMBERS"].split(",")), name
        assert uri["options"]["replicaSet"] == env["NRW_MONGO_REPLICA_SET"] == "rs0", name
        assert uri["username"] is None, f"{name}: no credentials in the URI"


def test_every_service_waits_for_what_it_needs(services):
    topics = {name: dep["condition"] for name, dep in services["topics"]["depends_on"].items()}
    assert {n: topics.get(n) for n in KAFKA_NODES} == {n: "service_healthy" for n in KAFKA_NODES}
    for name, service in project_services(services).items():
        needs = {n: dep["condition"] for n, dep in service["depends_on"].items()}
        assert needs.get("mongo-replica-set") == "service_completed_successfully", name
        assert all(needs.get(n) == "service_healthy" for n in ("kafka-2", "kafka-3")), name
        if name not in ("topics", "mongo-accounts"):
            assert needs.get("topics") == needs.get("mongo-accounts") == "service_completed_successfully", name
    for name, service in services.items():
        for dependency, dep in (service.get("depends_on") or {}).items():
            if dep["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s health, which it lacks"


@pytest.mark.parametrize("kind", ["consumer", "relay", "web"])
def test_consumers_relays_and_web_services_scale(services, kind):
    """`docker compose up --scale <service>=N`: no fixed container name, no published host port."""
    for service in SERVICES:
        container = services[f"{service}-{kind}"]
        assert "container_name" not in container, f"{service}-{kind}"
        assert published_ports(container) == [], f"{service}-{kind}"
    for name, service in services.items():
        if name != "proxy":
            assert not published_ports(service), f"{name} publishes a port"


def test_each_container_is_given_only_its_own_secrets(services):
    holders = {name: set() for name in CLUSTER_KEY_HOLDERS}
    for name, service in services.items():
        for secret, target in service_secrets(service).items():
            assert secret in holders, f"{name} is given {secret}, which is not a key file of the system"
            assert target == f"/run/secrets/{secret}", name
            holders[secret].add(name)
    assert holders == CLUSTER_KEY_HOLDERS


def test_no_secret_in_the_file(services):
    for name, service in services.items():
        assert "env_file" not in service, name
        for var, value in service_env(service).items():
            assert _secret_like(var, value) is None, f"{name}: {var}"
    spec = load(CLUSTER_FILE)["secrets"][REPLICA_KEY]
    assert spec == {"file": "${NRW_SECRETS_HOST_DIR:?set NRW_SECRETS_HOST_DIR to the folder of key files}/"
                            f"{REPLICA_KEY}"}, "the replica set's key is a file of the key folder"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [path for path in tracked if Path(path).name == REPLICA_KEY or "keyfile" in Path(path).name.lower()]


def test_docker_compose_accepts_the_cluster_with_the_test_host():
    """`docker compose config` (no engine needed) reads the two files, and with the test host's overlay."""
    assert _compose_config(compose_test_env(), TEST_HOST)["services"]["kafka-3"]


def test_the_merge_here_is_the_one_compose_makes(merged):
    """The PyYAML merge the checks above use gives what `docker compose config` gives."""
    ours = resolved(merged, SERVER_ENV)["services"]
    theirs = _compose_config(SERVER_ENV)["services"]
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert service_env(ours[name]) == service_env(theirs[name]), name
        assert set(service_secrets(ours[name])) == set(service_secrets(theirs[name])), name
        assert set(ours[name].get("depends_on") or {}) == set(theirs[name].get("depends_on") or {}), name


# On an engine: the cluster up, with two case consumers.

PROJECT = "nrw-cluster-test"


def _compose(*args: str, timeout: int = 1200) -> str:
    files = [COMPOSE_FILE, CLUSTER_FILE, TEST_HOST]
    result = subprocess.run(["docker", "compose", "--project-name", PROJECT, *(f"--file={f}" for f in files), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (args, result.stderr[-4000:])
    return result.stdout


@pytest.mark.timeout(1800)
def test_the_cluster_runs_with_two_case_consumers_and_replicates():
    reason = docker_engine_missing()
    if reason:
        pytest.skip(reason)
    from infra.stack import ready
    from tests.support import Api, synthetic_report, wait_for

    env = compose_test_env()
    state = COMPOSE_STATE.parent / "compose-cluster"
    env["NRW_SECRETS_HOST_DIR"], env["NRW_TEST_TLS_DIR"] = str(state / "secrets"), str(state / "tls")
    secrets = Path(env["NRW_SECRETS_HOST_DIR"])
    secrets.mkdir(parents=True, mode=0o700, exist_ok=True)
    make_key_files(secrets)
    (secrets / REPLICA_KEY).write_text(os.urandom(384).hex() + "\n")
    ca = make_test_certificates(Path(env["NRW_TEST_TLS_DIR"]), env["NRW_DOMAIN"])
    with pytest.MonkeyPatch.context() as mp, resolving_to_loopback(env["NRW_DOMAIN"]):
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setenv("REQUESTS_CA_BUNDLE", str(ca))
        try:
            _compose("up", "--build", "--detach", "--scale", "case-consumer=2")
            assert len(_compose("ps", "--quiet", "case-consumer").split()) == 2
            # the set has a primary and two secondaries (the job is idempotent: it only waits now)
            assert "ready (PRIMARY, SECONDARY, SECONDARY)" in _compose("run", "--rm", "mongo-replica-set")
            urls = public_urls(env)
            for service, url in urls.items():  # the first start builds the image and pulls the others
                wait_for(lambda url=url: ready(url), timeout_s=600, interval_s=2, what=f"{service} through the proxy")
            api = Api(urls)
            created = api.post_report(synthetic_report())
            wait_for(lambda: api.case(created["case_id"]), timeout_s=60, what="the case, via the cluster")
            described = _compose("exec", "-T", "kafka", "/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server",
                                 "kafka:9092", "--command-config", "/tmp/nrw-kafka/health.properties", "--describe")
            factors = set(re.findall(r"ReplicationFactor:\s*(\d+)", described))
            assert factors == {"3"}, described[:2000]
        finally:
            subprocess.run(["docker", "compose", "--project-name", PROJECT,
                            *(f"--file={f}" for f in (COMPOSE_FILE, CLUSTER_FILE, TEST_HOST)), "down", "-v"],
                           cwd=ROOT, capture_output=True, timeout=300)
