"""The launcher's cluster (issue 13 point 3): N Kafka nodes and several of every consumer and
relay from the one Procfile, and the topics' replication from NRW_TOPIC_REPLICATION."""

from __future__ import annotations

from infra.stack import PROCFILE, cluster_env, read_procfile, scaled_procfile
from shared.config import Settings


def test_three_nodes_each_with_its_ports_and_two_of_every_consumer_and_relay(tmp_path):
    env = cluster_env(3, first_port=20000)
    assert env == {"NRW_KAFKA_BOOTSTRAP": "127.0.0.1:20000,127.0.0.1:20002,127.0.0.1:20004",
                   "NRW_KAFKA_QUORUM": "1@127.0.0.1:20001,2@127.0.0.1:20003,3@127.0.0.1:20005",
                   "NRW_TOPIC_REPLICATION": "3"}
    procs = read_procfile(scaled_procfile(tmp_path / "Procfile", env, instances=2))
    single = read_procfile(PROCFILE)
    assert procs["kafka-2"] == ("env NRW_KAFKA_NODE_ID=2 NRW_KAFKA_NODE_ADDRESS=127.0.0.1:20002 "
                                f"NRW_KAFKA_CONTROLLER_PORT=20003 {single['kafka']}")
    assert "kafka" not in procs and {"kafka-1", "kafka-3"} <= set(procs)
    for name, command in single.items():
        if name.endswith(("-consumer", "-relay")):
            assert procs[f"{name}-1"] == procs[f"{name}-2"] == command and name not in procs
        elif name != "kafka":
            assert procs[name] == command  # one web process (its own workers), one database


def test_replication_and_min_insync_from_the_setting(monkeypatch):
    assert (Settings().topic_replication, Settings().topic_min_insync) == (1, 1)
    monkeypatch.setenv("NRW_TOPIC_REPLICATION", "3")
    settings = Settings.from_env()
    assert (settings.topic_replication, settings.topic_min_insync) == (3, 2)
