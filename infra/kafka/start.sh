#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft, combined broker+controller) in the foreground.
# Data lives under $NRW_VAR/kafka, so a restart keeps every event. The storage directory is
# formatted once, on the first start.
#
# Nobody talks to it without credentials. Every client, the broker itself (between brokers) and
# the admin log in with SASL SCRAM-SHA-512, one principal each (shared/kafka_auth.py), so no
# password crosses the network (a program that took the port first learns nothing); the
# broker's and the admin's credentials are written into the cluster's metadata when the storage
# is formatted (their passwords reach Kafka's format tool in a 0600 argument file, never on a
# command line), the other principals' by `python -m shared.topics`, logged in as admin. The
# controller listener knows only the controller (SASL PLAIN, a static user of this file). The
# ACL authoriser (StandardAuthorizer) refuses whatever a principal was not granted. Passwords are
# files in the secrets folder (0600, made by `python -m shared.keys init`); the generated
# properties hold two of them and are 0600 too.
#
# docker-compose.yml runs this same script in the apache/kafka image: NRW_KAFKA_HOME names the
# image's Kafka (its jars, nothing to fetch), NRW_KAFKA_LISTEN_HOST the address to bind, and
# NRW_KAFKA_DATA / NRW_KAFKA_CONF where the data and this generated configuration go.
#
# A cluster on one machine (or one node of a cluster anywhere): NRW_KAFKA_QUORUM lists every
# controller as id@host:port (controller.quorum.voters, e.g. three combined broker+controller
# nodes), NRW_KAFKA_NODE_ID says which one this is, and NRW_KAFKA_NODE_ADDRESS is its own client
# address (host:port; NRW_KAFKA_BOOTSTRAP may then list every node). Each node keeps its data and
# configuration under $NRW_VAR/kafka/node-<id>; all are formatted with the same cluster id (made
# once, $NRW_VAR/kafka/cluster.id, or NRW_KAFKA_CLUSTER_ID) and the same SCRAM logins and ACL
# authoriser as the single node. Internal topics (consumer offsets) get NRW_TOPIC_REPLICATION
# replicas, as the system's topics do (shared/topics.py), with min.insync.replicas 2 of 3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
umask 077
var="${NRW_VAR:-$root/var}"
secrets="${NRW_SECRETS_DIR:-$var/secrets}"
if [ -n "${NRW_KAFKA_HOME:-}" ]; then
  libs="$NRW_KAFKA_HOME/libs"
else
  "$here/fetch.sh"
  libs="$root/.cache/kafka/libs"
fi
bootstrap="${NRW_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
address="${NRW_KAFKA_NODE_ADDRESS:-${bootstrap%%,*}}"
port="${address##*:}"
host="${address%:*}"
bind="${NRW_KAFKA_LISTEN_HOST:-$host}"
controller_port="${NRW_KAFKA_CONTROLLER_PORT:-$((port + 1))}"
node_id="${NRW_KAFKA_NODE_ID:-1}"
quorum="${NRW_KAFKA_QUORUM:-}"
replication="${NRW_TOPIC_REPLICATION:-1}"
min_isr=1
if [ "$replication" -ge 3 ]; then min_isr=2; fi
if [ -n "$quorum" ]; then
  data="${NRW_KAFKA_DATA:-$var/kafka/node-$node_id/data}"
  conf="${NRW_KAFKA_CONF:-$var/kafka/node-$node_id}"
  quorum_setting="controller.quorum.voters=$quorum"
else
  data="${NRW_KAFKA_DATA:-$var/kafka/data}"
  conf="${NRW_KAFKA_CONF:-$var/kafka}"
  quorum_setting="controller.quorum.bootstrap.servers=$host:$controller_port"
fi
props="$conf/server.properties"
mkdir -p "$data" "$conf"
# One more listener, same logins, for clients outside the broker's network (the compose tier's
# tests on the host): NRW_KAFKA_HOST_LISTENER is the address they use, bound on port 29092.
listeners="CLIENT://$bind:$port,CONTROLLER://$bind:$controller_port"
advertised="CLIENT://$host:$port,CONTROLLER://$host:$controller_port"
protocols="CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT"
if [ -n "${NRW_KAFKA_HOST_LISTENER:-}" ]; then
  listeners="$listeners,HOST://$bind:29092"
  advertised="$advertised,HOST://$NRW_KAFKA_HOST_LISTENER"
  protocols="$protocols,HOST:SASL_PLAINTEXT"
fi
for principal in admin broker controller; do
  if [ ! -s "$secrets/kafka-$principal.password" ]; then
    (cd "$root" && python -m shared.keys init >/dev/null)
  fi
done
broker_password=$(cat "$secrets/kafka-broker.password")
controller_password=$(cat "$secrets/kafka-controller.password")
admin_password=$(cat "$secrets/kafka-admin.password")
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=$node_id
$quorum_setting
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=$protocols
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_password";
listener.name.host.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password" user_controller="$controller_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:broker;User:controller;User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=3
default.replication.factor=$replication
min.insync.replicas=$min_isr
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
PROPS
chmod 600 "$props"
# What a health check logs in with (the broker's own login; 0600 like the properties).
cat > "$conf/health.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_password";
PROPS
chmod 600 "$conf/health.properties"
cp=("$libs/*")
java_opts=(-Xms256m -Xmx${NRW_KAFKA_HEAP:-768m} -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$here/log4j2.xml")
if [ -e "$data/meta.properties" ] && [ ! -e "$data/nrw-scram" ]; then
  echo "kafka: $data was formatted before the broker asked for SCRAM logins, so its admin cannot" >&2
  echo "kafka: log in. Move it aside (mv $data $data.old) to start afresh; the services' databases" >&2
  echo "kafka: keep their state, and reporting can be rebuilt from the new topics." >&2
  exit 1
fi
if [ ! -e "$data/meta.properties" ]; then
  if [ -z "$quorum" ]; then
    cluster_id=$(java -cp "${cp[*]}" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
    standalone="--standalone"
  else
    # Every node of the cluster is formatted with one cluster id: the first node to start makes
    # it (noclobber: one writer wins), the others read it.
    cluster_id="${NRW_KAFKA_CLUSTER_ID:-}"
    if [ -z "$cluster_id" ]; then
      id_file="$var/kafka/cluster.id"
      candidate=$(java -cp "${cp[*]}" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
      (set -C; echo "$candidate" > "$id_file.$node_id" && ln "$id_file.$node_id" "$id_file") 2>/dev/null || true
      rm -f "$id_file.$node_id"
      cluster_id=$(cat "$id_file")
    fi
    standalone=""
  fi
  echo "kafka: formatting $data (cluster $cluster_id)"
  # The main class and its arguments come from a 0600 file (the java launcher reads it), so the
  # two passwords never show in the process list.
  args="$conf/format.args"
  trap 'rm -f "$args"' EXIT
  cat > "$args" <<ARGS
kafka.tools.StorageTool
format
$standalone
-t
$cluster_id
-c
"$props"
--add-scram
"SCRAM-SHA-512=[name=broker,password=$broker_password]"
--add-scram
"SCRAM-SHA-512=[name=admin,password=$admin_password]"
ARGS
  chmod 600 "$args"
  java -cp "${cp[*]}" "${java_opts[@]}" "@$args" >/dev/null
  rm -f "$args"
  trap - EXIT
  touch "$data/nrw-scram"
fi
exec java -cp "${cp[*]}" "${java_opts[@]}" kafka.Kafka "$props"
