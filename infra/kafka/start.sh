#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft, combined broker+controller) in the foreground.
# Data lives under $NRW_VAR/kafka, so a restart keeps every event. The storage directory is
# formatted once, on the first start.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/infra/kafka/fetch.sh"
var="${NRW_VAR:-$root/var}"
bootstrap="${NRW_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
port="${bootstrap##*:}"
host="${bootstrap%:*}"
controller_port="${NRW_KAFKA_CONTROLLER_PORT:-$((port + 1))}"
data="$var/kafka/data"
props="$var/kafka/server.properties"
mkdir -p "$data"
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$host:$controller_port
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
PROPS
cp=("$root/.cache/kafka/libs/*")
java_opts=(-Xms256m -Xmx${NRW_KAFKA_HEAP:-768m} -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$root/infra/kafka/log4j2.xml")
if [ ! -e "$data/meta.properties" ]; then
  cluster_id=$(java -cp "${cp[*]}" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
  echo "kafka: formatting $data (cluster $cluster_id)"
  java -cp "${cp[*]}" "${java_opts[@]}" kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$props" >/dev/null
fi
exec java -cp "${cp[*]}" "${java_opts[@]}" kafka.Kafka "$props"
