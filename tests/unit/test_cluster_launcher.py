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


def test_each_consumer_instance_gets_the_same_partition_numbers_of_every_topic(monkeypatch):
    """EventConsumer asks for the range assignment, which gives each instance the same partition
    numbers of every topic (one partition count, the case id as key): a case's events from
    intake, case and advocacy all reach one instance at a time."""
    from types import SimpleNamespace

    from shared import bus
    from shared.config import CONSUMES

    made = {}

    class Subscribing:
        def subscribe(self, topics, listener):
            made.update(topics=topics, listener=listener)

    monkeypatch.setattr(bus, "KafkaConsumer", lambda *topics, **options: made.update(options) or Subscribing())
    settings = Settings(kafka_security_protocol="PLAINTEXT")
    bus.EventConsumer(settings, principal="reporting", group_id="reporting", topics=CONSUMES["reporting"],
                      handlers={}, publisher=None)._connect()
    assert made["topics"] == CONSUMES["reporting"] and isinstance(made["listener"], bus._Assignments)
    (strategy,) = made["partition_assignment_strategy"]
    for instances in (2, 3):
        members = [SimpleNamespace(member_id=f"reporting-{i}", group_instance_id=None,
                                   metadata=SimpleNamespace(topics=CONSUMES["reporting"])) for i in range(instances)]
        cluster = SimpleNamespace(partitions_for_topic=lambda topic: {0, 1, 2})
        assignment = strategy.assign(cluster, members)
        for member, given in assignment.items():
            numbers = {topic: tuple(partitions) for topic, partitions in given.assignment}
            assert set(numbers) == set(CONSUMES["reporting"])
            assert len(set(numbers.values())) == 1, numbers  # the same numbers of every topic
        owned = sorted(p for given in assignment.values() for p in dict(given.assignment)[CONSUMES["reporting"][0]])
        assert owned == [0, 1, 2]


def test_a_batch_handler_is_told_of_each_hand_out_and_of_co_partitioning():
    """The listener counts the group's hand-outs (revoked, then assigned: a new number each time)
    and says whether every topic read has one partition count (a partition number then holds the
    same cases in every topic)."""
    from types import SimpleNamespace

    from shared import bus

    owner = SimpleNamespace(topics=["a", "b"], rebalances=0, copartitioned=False)
    counts = {"a": {0, 1, 2}, "b": {0, 1, 2}}
    listener = bus._Assignments(owner, SimpleNamespace(partitions_for_topic=lambda topic: counts.get(topic)))
    listener.on_partitions_revoked(set())
    listener.on_partitions_assigned(set())
    assert (owner.rebalances, owner.copartitioned) == (2, True)
    counts["b"] = {0, 1}
    listener.on_partitions_assigned(set())
    assert (owner.rebalances, owner.copartitioned) == (3, False)
    del counts["b"]  # a topic the consumer has no metadata of yet
    listener.on_partitions_assigned(set())
    assert owner.copartitioned is False
