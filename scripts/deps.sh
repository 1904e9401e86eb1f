#!/usr/bin/env bash
# Installs the Debian and PyPI packages hostmeter needs to build (and, with --test, to test).
# Idempotent: packages already present are not fetched again.
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

debs=(libsqlite3-dev)
if (( want_test )); then
  debs+=(python3 iproute2 prometheus-alertmanager)
  # Tests/hostmeterTests/APITLSTests.swift makes its CA and certificates with the openssl tool.
  debs+=(openssl)
  # scripts/package-test.sh: dpkg-shlibdeps (dpkg-dev), lintian, systemd-analyze (systemd), promtool
  # (prometheus), and adduser for the package's postinst.
  debs+=(dpkg-dev lintian systemd prometheus adduser)
  # scripts/chaos.sh: libfaketime steps the agent's wall clock (and only the agent's).
  debs+=(faketime)
fi

missing=()
for package in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if (( ${#missing[@]} )); then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  echo "deps: installing ${missing[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if (( want_test )); then
  # Independent readers the tests compare hostmeter against, the JSON Schema validator that
  # checks its events against docs/schema, and the consumer's CloudEvents SDK.
  python3 -c 'import psutil' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check psutil
  python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check jsonschema
  # The loopback consumer (scripts/consumer.py) reads CloudEvents batches with the CloudEvents SDK.
  python3 -c 'import cloudevents' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check cloudevents
fi
