#!/bin/sh
# Lints the deployment files under deploy/ (run by `make lint`).
#
#   - every *.yml / *.yaml: yamllint -d relaxed (only errors fail; run
#     yamllint yourself to see warnings such as long lines)
#   - every *.json: Debian's /usr/bin/python3 -m json.tool (the python3 on
#     PATH may be another interpreter)
#   - deploy/redis/*.sh: sh -n, and shellcheck when installed
#   - the Redis scripts embedded in k8s/redis-cluster-statefulset.yaml are
#     byte-for-byte the files in deploy/redis/
#   - Prometheus rules and config: promtool check + the rule unit tests,
#     when promtool is installed (Debian package "prometheus")
#   - deploy/k8s renders with `kubectl kustomize`, when kubectl is installed
#
# Prints one line per check and ends with "lint: N checks ok, N failed, N
# skipped" (worded so CI does not take it for the test-runner summary);
# exits non-zero if anything failed or a required tool is missing.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2

PY=/usr/bin/python3
passed=0
failed=0
skipped=0

ok() {
    passed=$((passed + 1))
    echo "ok    $*"
}
bad() {
    failed=$((failed + 1))
    echo "FAIL  $*"
}
skip() {
    skipped=$((skipped + 1))
    echo "skip  $*"
}
# run LABEL CMD...: runs CMD; shows its output only when it fails.
run() {
    label=$1
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        ok "$label"
    else
        bad "$label"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
    return 0
}

if ! command -v yamllint >/dev/null 2>&1; then
    echo "lint: yamllint is not installed (apt-get install yamllint," \
        "or make deps)" >&2
    exit 2
fi
if [ ! -x "$PY" ]; then
    echo "lint: $PY is missing (Debian python3)" >&2
    exit 2
fi

yaml_files=$(find deploy -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
json_files=$(find deploy -type f -name '*.json' | sort)
sh_files=$(find deploy/redis -type f -name '*.sh' 2>/dev/null | sort)

if [ -z "$yaml_files" ]; then
    bad "no YAML files found under deploy/"
fi
for f in $yaml_files; do
    run "yamllint  $f" yamllint -f parsable -d relaxed "$f"
done
for f in $json_files; do
    run "json.tool $f" "$PY" -m json.tool "$f" /dev/null
done

for f in $sh_files; do
    run "sh -n     $f" sh -n "$f"
    if command -v shellcheck >/dev/null 2>&1; then
        run "shellcheck $f" shellcheck -s sh "$f"
    else
        skip "shellcheck $f (shellcheck not installed)"
    fi
done

# The StatefulSet's ConfigMap carries copies of the Redis scripts so the
# manifest stands alone; compose mounts the originals.
sts=deploy/k8s/redis-cluster-statefulset.yaml
if [ -f "$sts" ]; then
    run "scripts in $sts match deploy/redis/" "$PY" - "$sts" <<'EOF'
import sys
import yaml

with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
cms = [d for d in docs
       if d.get("kind") == "ConfigMap"
       and d["metadata"]["name"] == "redis-cluster-config"]
if not cms:
    sys.exit("no ConfigMap redis-cluster-config")
data = cms[0].get("data", {})
bad = 0
for name in ("cluster-node.sh", "cluster-create.sh"):
    with open("deploy/redis/" + name) as f:
        want = f.read()
    if data.get(name) != want:
        print("%s differs from deploy/redis/%s" % (name, name))
        bad = 1
sys.exit(bad)
EOF
fi

if command -v promtool >/dev/null 2>&1; then
    run "promtool check config deploy/prometheus/prometheus.yml" \
        promtool check config deploy/prometheus/prometheus.yml
    run "promtool test rules deploy/prometheus/alerts_test.yml" \
        promtool test rules deploy/prometheus/alerts_test.yml
else
    skip "promtool checks (install Debian package prometheus)"
fi

if command -v kubectl >/dev/null 2>&1; then
    run "kubectl kustomize deploy/k8s" sh -c \
        'kubectl kustomize deploy/k8s >/dev/null'
else
    skip "kubectl kustomize deploy/k8s (kubectl not installed)"
fi

# The C sources follow .clang-format (../shared/STYLE.md §8).
if command -v clang-format >/dev/null 2>&1; then
    run "clang-format processor/ tests/" sh -c \
        'clang-format --dry-run -Werror processor/*.c processor/*.h tests/*.c tests/*.h'
else
    skip "clang-format (install Debian package clang-format)"
fi

echo "lint: $passed checks ok, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
