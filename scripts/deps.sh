#!/usr/bin/env bash
# Installs the Debian and PyPI packages hostmeter needs to build (and, with --test, to test).
# Idempotent: packages already present are not fetched again. With --test it ends by checking
# every tool the tests use and prints, in one list, any that is still missing (the tests that
# need it fail naming it); the build's own needs stop it at once.
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# The build links SQLite, the NATS C client (the nats sink) and librdkafka (the kafka sink) as
# system libraries; the kafka tests also build librdkafka's mock cluster helper against it.
debs=(libsqlite3-dev libnats-dev librdkafka-dev)
if (( want_test )); then
  debs+=(python3 python3-pip iproute2 prometheus-alertmanager gcc openssl curl)
  # scripts/package-test.sh: dpkg-shlibdeps (dpkg-dev), lintian, systemd-analyze (systemd), promtool
  # (prometheus), and adduser for the package's postinst.
  debs+=(dpkg-dev lintian systemd prometheus adduser)
  # scripts/chaos.sh: libfaketime steps the agent's wall clock (and only the agent's).
  debs+=(faketime)
  # The nats sink's tests: Debian's NATS server, alone and as a three-node JetStream cluster.
  debs+=(nats-server)
fi

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)

missing=()
for package in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if (( ${#missing[@]} )); then
  echo "deps: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq || echo "deps: apt-get update failed; trying with the package lists there are" >&2
  if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # One at a time, so one package that cannot be had does not keep the others out.
    for package in "${missing[@]}"; do
      DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
        || echo "deps: cannot install the Debian package $package" >&2
    done
  fi
fi
# The build cannot go on without SQLite's header.
[[ -f /usr/include/sqlite3.h ]] || { echo "deps: libsqlite3-dev is missing (sqlite3.h); the build needs it" >&2; exit 1; }
[[ -f /usr/include/nats/nats.h ]] || { echo "deps: libnats-dev is missing (nats/nats.h); the build needs it" >&2; exit 1; }
[[ -f /usr/include/librdkafka/rdkafka.h ]] \
  || { echo "deps: librdkafka-dev is missing (librdkafka/rdkafka.h); the build needs it" >&2; exit 1; }

(( want_test )) || exit 0

# PyPI, as python module → package: independent readers the tests compare hostmeter against
# (psutil), the JSON Schema validator for docs/schema (jsonschema), the consumer's CloudEvents SDK
# (cloudevents), schemathesis, which LiveAPITests runs against docs/openapi.yaml, the independent
# verifier's Ed25519 (cryptography), and for the tests and lint of scripts/hostmeter_tools: pytest,
# PyYAML (reads back what the configuration writer wrote) and ruff.
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
python3 -c 'import psutil' 2>/dev/null || pip_install psutil || echo "deps: cannot pip install psutil" >&2
python3 -c 'import jsonschema' 2>/dev/null || pip_install jsonschema || echo "deps: cannot pip install jsonschema" >&2
python3 -c 'import cloudevents' 2>/dev/null || pip_install cloudevents || echo "deps: cannot pip install cloudevents" >&2
command -v schemathesis >/dev/null 2>&1 || pip_install schemathesis || echo "deps: cannot pip install schemathesis" >&2
python3 -c 'import cryptography' 2>/dev/null || pip_install cryptography || echo "deps: cannot pip install cryptography" >&2
python3 -c 'import pytest' 2>/dev/null || pip_install pytest || echo "deps: cannot pip install pytest" >&2
python3 -c 'import yaml' 2>/dev/null || pip_install pyyaml || echo "deps: cannot pip install pyyaml" >&2
python3 -m ruff --version >/dev/null 2>&1 || pip_install ruff || echo "deps: cannot pip install ruff" >&2

# Every tool the tests use, checked after the installs: one list of what is still missing.
absent=()
for tool in python3 ip gcc openssl curl promtool prometheus-alertmanager faketime dpkg-shlibdeps lintian \
  systemd-analyze adduser schemathesis nats-server; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool || -x /sbin/$tool ]] || absent+=("$tool")
done
python3 -m ruff --version >/dev/null 2>&1 || absent+=("python3 module ruff")
for module in psutil jsonschema cloudevents cryptography pytest yaml; do
  python3 -c "import $module" 2>/dev/null || absent+=("python3 module $module")
done
if (( ${#absent[@]} )); then
  {
    echo "deps: these tools the tests use could not be installed; the tests that need them will fail:"
    printf '  - %s\n' "${absent[@]}"
  } >&2
fi
exit 0
