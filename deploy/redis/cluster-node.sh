#!/bin/sh
# Starts one Redis Cluster node (redis:7.x image, POSIX sh).
#
# Used as is by docker-compose.cluster.yml and embedded verbatim in
# k8s/redis-cluster-statefulset.yaml (tests/lint.sh checks the two copies are
# equal: edit both).
#
# 1. Writes a run config that includes the static one and adds what is known
#    only at start: the address to announce to peers and clients, and the
#    password (from the environment, so it never appears in `ps`).
# 2. Node addresses change when a container or pod is recreated. Redis keeps
#    peers' last addresses in nodes.conf; if every node came back on a new IP
#    none could reach another. Before starting, each peer's IP in nodes.conf is
#    refreshed from the hostname it announced (kept in nodes.conf since 7.0).
#
# Environment:
#   POD_IP             own IP (default: `hostname -i`)
#   ANNOUNCE_HOSTNAME  name peers and clients use for this node (default:
#                      `hostname`); cluster-preferred-endpoint-type hostname
#                      makes MOVED/ASK and CLUSTER SLOTS carry it
#   REDIS_PASSWORD     optional; sets requirepass and masterauth. Use
#                      [A-Za-z0-9] only: it is written into a config line.
#   REDIS_BASE_CONF    static config (default /usr/local/etc/redis/redis.conf)
#   REDIS_DATA_DIR     must match `dir` in it (default /data)
#
# Arguments are passed on to redis-server, e.g. --loadmodule of trustd's
# module (deploy/RUNBOOK.md "The Redis module").
set -eu

base_conf=${REDIS_BASE_CONF:-/usr/local/etc/redis/redis.conf}
data_dir=${REDIS_DATA_DIR:-/data}
run_conf=${REDIS_RUN_CONF:-/tmp/redis-run.conf}
my_ip=${POD_IP:-$(hostname -i | awk '{ print $1 }')}
my_host=${ANNOUNCE_HOSTNAME:-$(hostname)}

umask 077
{
    echo "include $base_conf"
    echo "cluster-announce-ip $my_ip"
    echo "cluster-announce-hostname $my_host"
    if [ -n "${REDIS_PASSWORD:-}" ]; then
        echo "requirepass \"$REDIS_PASSWORD\""
        echo "masterauth \"$REDIS_PASSWORD\""
    fi
} > "$run_conf"

nodes_conf="$data_dir/nodes.conf"
if [ -s "$nodes_conf" ]; then
    # Field 2 is ip:port@cport[,hostname[,aux=value...]].
    awk -v myip="$my_ip" '
        function resolve(host,    cmd, line, f) {
            cmd = "getent hosts " host
            line = ""
            cmd | getline line
            close(cmd)
            split(line, f, " ")
            return f[1]
        }
        $1 == "vars" || NF < 3 { print; next }
        {
            n = split($2, a, ",")
            ip = ""
            if ($3 ~ /myself/) {
                ip = myip
            } else if (n >= 2 && a[2] != "" && a[2] !~ /=/) {
                ip = resolve(a[2])
            }
            if (ip != "" && match(a[1], /:[0-9]+@[0-9]+$/)) {
                addr = ip substr(a[1], RSTART)
                for (i = 2; i <= n; i++) addr = addr "," a[i]
                $2 = addr
            }
            print
        }' "$nodes_conf" > "$nodes_conf.tmp"
    mv "$nodes_conf.tmp" "$nodes_conf"
fi

exec redis-server "$run_conf" "$@"
