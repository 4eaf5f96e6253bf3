#!/bin/sh
# Forms a Redis Cluster once (redis:7.x image, POSIX sh).
#
# Used as is by docker-compose.cluster.yml and embedded verbatim in the Job in
# k8s/redis-cluster-statefulset.yaml (tests/lint.sh checks the two copies are
# equal: edit both).
#
# Waits for every node, then:
#   - every node already knows its peers: the cluster exists; print its state
#     and exit 0 (so the job can run again safely);
#   - some nodes know peers and others do not: a half-formed cluster; exit 1
#     and leave it to an operator (RUNBOOK.md "Redis Cluster");
#   - no node knows a peer: redis-cli --cluster create with one replica per
#     master, then wait for cluster_state:ok.
# Addresses are resolved to IPs first: CLUSTER MEET takes IPs.
#
# Environment:
#   REDIS_NODES             space-separated host:port list (6 for 3+3)
#   REDIS_CLUSTER_REPLICAS  replicas per master (default 1)
#   REDISCLI_AUTH           password, if the nodes have one (read by redis-cli)
set -eu

: "${REDIS_NODES:?space-separated host:port list}"
replicas=${REDIS_CLUSTER_REPLICAS:-1}

cluster_field() { # host port field
    redis-cli -h "$1" -p "$2" cluster info | tr -d '\r' |
        awk -F: -v k="$3" '$1 == k { print $2 }'
}

addrs=""
total=0
formed=0
for node in $REDIS_NODES; do
    host=${node%:*}
    port=${node##*:}
    tries=0
    until redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG; do
        tries=$((tries + 1))
        if [ "$tries" -gt 90 ]; then
            echo "cluster-create: $node did not answer PING in 180 s" >&2
            exit 1
        fi
        sleep 2
    done
    ip=$(getent hosts "$host" | awk '{ print $1; exit }')
    if [ -z "$ip" ]; then
        echo "cluster-create: cannot resolve $host" >&2
        exit 1
    fi
    addrs="$addrs $ip:$port"
    total=$((total + 1))
    known=$(cluster_field "$host" "$port" cluster_known_nodes)
    if [ "${known:-1}" -gt 1 ]; then
        formed=$((formed + 1))
    fi
done

first=${REDIS_NODES%% *}
if [ "$formed" -eq "$total" ]; then
    echo "cluster-create: cluster already formed"
    redis-cli --cluster check "$first"
    exit 0
fi
if [ "$formed" -gt 0 ]; then
    echo "cluster-create: $formed of $total nodes already belong to a" \
        "cluster; not touching it (see RUNBOOK.md)" >&2
    exit 1
fi

# shellcheck disable=SC2086 # one argument per address
redis-cli --cluster create $addrs --cluster-replicas "$replicas" --cluster-yes

for node in $REDIS_NODES; do
    tries=0
    until [ "$(cluster_field "${node%:*}" "${node##*:}" cluster_state)" = ok ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            echo "cluster-create: $node not cluster_state:ok after 120 s" >&2
            exit 1
        fi
        sleep 2
    done
done
redis-cli --cluster check "$first"
echo "cluster-create: done"
