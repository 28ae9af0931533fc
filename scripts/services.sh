#!/usr/bin/env bash
# Make sure the services the tests use are running: PostgreSQL (store metadata), Redis and NATS
# (brokers). Each is started only if its binary exists and its port is closed. A missing binary
# is a warning, never an error (tests that need a missing service fail or skip on their own).
set -uo pipefail

warn() { echo "services.sh: warning: $*" >&2; }

port_open() {  # port_open HOST PORT: is something listening there?
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for_port() {  # wait_for_port NAME HOST PORT
    for _ in $(seq 1 50); do
        port_open "$2" "$3" && return 0
        sleep 0.2
    done
    warn "$1 did not open $2:$3 within 10 s"
    return 1
}

# ---- PostgreSQL on 127.0.0.1:5432
if command -v pg_isready >/dev/null 2>&1; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] \
            && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
            version=$(ls /etc/postgresql | sort -V | tail -n 1)
            pg_ctlcluster --skip-systemctl-redirect "$version" main start \
                || warn "pg_ctlcluster $version main start failed"
            for _ in $(seq 1 60); do
                pg_isready -q -h 127.0.0.1 -p 5432 && break
                sleep 0.5
            done
            pg_isready -q -h 127.0.0.1 -p 5432 \
                || warn "PostgreSQL is not accepting connections on 127.0.0.1:5432 after 30 s"
        else
            warn "PostgreSQL is not running and no cluster under /etc/postgresql to start"
        fi
    fi
else
    warn "pg_isready not found: PostgreSQL is not installed; its tests will skip (or fail with CI=true)"
fi

# ---- Redis on 127.0.0.1:6379
if command -v redis-server >/dev/null 2>&1; then
    if ! port_open 127.0.0.1 6379; then
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log \
            || warn "redis-server failed to start (see /var/log/redis/ci.log)"
        wait_for_port Redis 127.0.0.1 6379
    fi
else
    warn "redis-server not found: Redis is not started"
fi

# ---- NATS (JetStream) on 127.0.0.1:4222
if [ -x /usr/sbin/nats-server ]; then
    if ! port_open 127.0.0.1 4222; then
        mkdir -p /var/lib/nats-server 2>/dev/null
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log \
            || warn "nats-server failed to start (see /var/log/nats-server.log)"
        wait_for_port NATS 127.0.0.1 4222
    fi
else
    warn "/usr/sbin/nats-server not found: NATS is not started"
fi

exit 0
