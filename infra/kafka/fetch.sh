#!/usr/bin/env bash
# Copies the Apache Kafka jars named in pom.xml from Maven Central into .cache/kafka/libs, once.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
libs="$root/.cache/kafka/libs"
stamp="$libs/.complete-$(sha256sum "$root/infra/kafka/pom.xml" | cut -c1-16)"
if [ -e "$stamp" ]; then exit 0; fi
echo "kafka: fetching the Apache Kafka jars with Maven into .cache/kafka/libs (first run only, about 30 s)..."
rm -rf "$libs"
mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$root/.cache/m2" -f "$root/infra/kafka/pom.xml" \
  dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime
touch "$stamp"
echo "kafka: $(ls "$libs"/*.jar | wc -l) jars ready"
