#!/usr/bin/env bash
# The packaging test: builds the .deb and checks it, its unit, the alert rules and the dashboard.
#
#  1. scripts/build-deb.sh (static release build; several minutes the first time).
#  2. lintian: fails on any E: tag; warnings are shown.
#  3. The package's files, extracted with dpkg-deb -x: `hostmeter version`, `hostmeter config check`
#     of the shipped configuration, no libswift* (or missing) libraries in ldd, the conffile list,
#     `systemd-analyze verify` of the unit (any message fails), and its `systemd-analyze security`
#     exposure, which must stay at or below 2.0.
#  4. promtool check rules and promtool test rules on packaging/prometheus; the dashboard's structure,
#     metric names and PromQL (scripts/check-dashboards.py, then promtool).
#  5. As root on a machine where hostmeter is not installed (CI machines are fresh and throwaway), a
#     real dpkg -i: the system user, the state directory, the enabled unit, the conffile kept across a
#     reinstall, the agent running as its user (under systemd when systemd runs, else by hand), then
#     dpkg --remove and --purge leaving nothing behind. PACKAGE_TEST_INSTALL=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { echo "package-test: $*" >&2; }
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

scratch=$(mktemp -d)
installed_by_us=0
user_existed=1
cleanup() {
  if (( installed_by_us )); then
    step "cleanup: purging hostmeter"
    dpkg --purge hostmeter >/dev/null 2>&1 || true
    if (( ! user_existed )); then
      deluser --system --quiet hostmeter >/dev/null 2>&1 || true
      getent group hostmeter >/dev/null && delgroup --system --quiet hostmeter >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

for tool in lintian systemd-analyze promtool python3 dpkg-deb ldd readelf; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh --test installs it)"
done

# --- 1. build ------------------------------------------------------------------------------------
step "building the package"
deb=$(scripts/build-deb.sh | tail -n 1)
[[ -f $deb ]] || fail "build-deb.sh did not produce a package"
version=$(dpkg-deb -f "$deb" Version)
step "$deb: $(du -h "$deb" | cut -f1), version $version, Depends: $(dpkg-deb -f "$deb" Depends)"

# --- 2. lintian ----------------------------------------------------------------------------------
step "lintian"
lintian_out=$(lintian --fail-on none --display-info "$deb" 2>&1) || fail "lintian could not run: $lintian_out"
[[ -n $lintian_out ]] && printf '%s\n' "$lintian_out" >&2
if grep -q '^E: ' <<<"$lintian_out"; then
  fail "lintian reports errors"
fi

# --- 3. the package's files ----------------------------------------------------------------------
root=$scratch/root
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$scratch/DEBIAN"
bin=$root/usr/bin/hostmeter

step "hostmeter version"
out=$("$bin" version) || fail "hostmeter version failed"
[[ $out == "hostmeter $version" ]] || fail "hostmeter version printed '$out', the package is $version"

step "hostmeter config check of the shipped configuration"
out=$("$bin" config check "$root/etc/hostmeter/hostmeter.yaml" 2>&1) || fail "config check failed: $out"
grep -q ': ok$' <<<"$out" || fail "config check did not say ok: $out"
grep -q 'sink.type=file sink.path=/var/lib/hostmeter/events.jsonl state_dir=/var/lib/hostmeter' <<<"$out" ||
  fail "the shipped configuration is not the file sink under /var/lib/hostmeter: $out"

step "dynamic libraries"
libs=$(ldd "$bin") || fail "ldd failed on $bin"
printf '%s\n' "$libs" >&2
grep -q 'libswift\|libFoundation\|libdispatch\|libBlocksRuntime' <<<"$libs" && fail "the Swift runtime is linked dynamically"
grep -q 'not found' <<<"$libs" && fail "a library the binary needs is missing"
readelf -S "$bin" | grep -q '\.symtab' && fail "the binary is not stripped"

grep -qx /etc/hostmeter/hostmeter.yaml "$scratch/DEBIAN/conffiles" || fail "hostmeter.yaml is not a conffile"
for script in postinst prerm postrm; do
  [[ -x $scratch/DEBIAN/$script ]] || fail "no executable $script"
  sh -n "$scratch/DEBIAN/$script" || fail "$script is not valid sh"
done

step "systemd-analyze verify"
unit=$scratch/unit/hostmeter.service
mkdir -p "$(dirname "$unit")"
# verify checks that ExecStart's binary exists; point it at the extracted one.
sed "s#/usr/bin/hostmeter#$bin#g" "$root/lib/systemd/system/hostmeter.service" >"$unit"
out=$(cd "$(dirname "$unit")" && systemd-analyze verify ./hostmeter.service 2>&1) || fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify complained: $out"

step "systemd-analyze security (offline)"
security=$(cd "$(dirname "$unit")" && systemd-analyze security --offline=true --threshold=20 ./hostmeter.service 2>&1) ||
  fail "exposure above 2.0: $(tail -n 1 <<<"$security")"
step "$(grep 'Overall exposure' <<<"$security")"

# --- 4. alert rules and dashboard ----------------------------------------------------------------
step "promtool check rules / test rules"
promtool check rules packaging/prometheus/hostmeter-rules.yml >&2
(cd packaging/prometheus && promtool test rules hostmeter-rules.test.yml) >&2

step "Grafana dashboard"
python3 scripts/check-dashboards.py --promtool-rules "$scratch/dashboard-queries.yml" >&2
promtool check rules "$scratch/dashboard-queries.yml" >&2 || fail "a dashboard query is not valid PromQL"

# --- 5. a real installation ----------------------------------------------------------------------
# dpkg may be busy with another apt run on a shared machine: wait for its lock rather than fail.
dpkg_retry() {
  local tries=0 out
  while ! out=$(dpkg "$@" 2>&1); do
    if grep -q 'lock' <<<"$out" && (( tries++ < 60 )); then sleep 5; continue; fi
    printf '%s\n' "$out" >&2
    return 1
  done
  printf '%s\n' "$out" >&2
}

if [[ ${PACKAGE_TEST_INSTALL:-1} == 0 ]]; then
  step "real installation skipped (PACKAGE_TEST_INSTALL=0)"
elif (( $(id -u) != 0 )); then
  step "real installation skipped: not root"
elif dpkg-query -W -f='${Status}' hostmeter 2>/dev/null | grep -q 'installed'; then
  step "real installation skipped: hostmeter is already installed on this machine"
else
  systemd_runs=0
  [[ -d /run/systemd/system ]] && systemd_runs=1
  getent passwd hostmeter >/dev/null || user_existed=0

  step "dpkg -i $deb"
  installed_by_us=1
  dpkg_retry -i "$deb" || fail "dpkg -i failed"
  [[ $(dpkg-query -W -f='${Status}' hostmeter) == "install ok installed" ]] || fail "hostmeter is not installed"
  [[ $(hostmeter version) == "hostmeter $version" ]] || fail "installed hostmeter version is wrong"
  hostmeter config check /etc/hostmeter/hostmeter.yaml >&2 || fail "config check of the installed file failed"
  out=$(systemd-analyze verify /lib/systemd/system/hostmeter.service 2>&1) || fail "verify of the installed unit: $out"
  [[ -z $out ]] || fail "systemd-analyze verify of the installed unit complained: $out"

  IFS=: read -r _ _ uid _ _ home shell < <(getent passwd hostmeter) || fail "no hostmeter user"
  (( uid < 1000 )) || fail "hostmeter is not a system user (uid $uid)"
  [[ $home == /var/lib/hostmeter ]] || fail "hostmeter's home is $home"
  [[ $shell == */nologin || $shell == /bin/false ]] || fail "hostmeter has a login shell ($shell)"
  getent group hostmeter >/dev/null || fail "no hostmeter group"
  [[ $(stat -c '%U:%G %a' /var/lib/hostmeter) == "hostmeter:hostmeter 750" ]] ||
    fail "/var/lib/hostmeter is $(stat -c '%U:%G %a' /var/lib/hostmeter)"
  [[ -L /etc/systemd/system/multi-user.target.wants/hostmeter.service ]] || fail "the unit is not enabled"

  if (( systemd_runs )); then
    step "systemd runs: the service started by postinst"
    for _ in $(seq 60); do
      state=$(systemctl is-active hostmeter || true)
      [[ $state == activating ]] || break
      sleep 1
    done
    if [[ $state != active ]]; then
      systemctl status --no-pager hostmeter >&2 || true
      journalctl -u hostmeter -n 50 --no-pager >&2 || true
      fail "hostmeter.service is $state"
    fi
    systemctl reload hostmeter || fail "systemctl reload failed"
    systemctl stop hostmeter
    [[ $(systemctl show -p ExecMainStatus --value hostmeter) == 0 ]] ||
      fail "the agent did not exit 0 on stop: $(journalctl -u hostmeter -n 20 --no-pager)"
  elif ss -ltn 2>/dev/null | grep -q ':9780 '; then
    step "port 9780 is taken: the agent smoke run is skipped"
  else
    step "no systemd: running the agent as the hostmeter user with the shipped configuration"
    # setpriv execs the agent itself (runuser would stay in between and take the SIGTERM).
    setpriv --reuid=hostmeter --regid=hostmeter --clear-groups -- \
      hostmeter run --config /etc/hostmeter/hostmeter.yaml 2>"$scratch/run.log" &
    agent=$!
    for _ in $(seq 100); do
      [[ -f /var/lib/hostmeter/hostmeter.sqlite ]] && break
      kill -0 "$agent" 2>/dev/null || break
      sleep 0.1
    done
    sleep 1
    kill -TERM "$agent" 2>/dev/null || true
    status=0
    wait "$agent" || status=$?
    (( status == 0 )) || fail "the agent exited $status: $(cat "$scratch/run.log")"
    [[ $(stat -c %U /var/lib/hostmeter/hostmeter.sqlite 2>/dev/null) == hostmeter ]] ||
      fail "the agent made no database of its own in /var/lib/hostmeter: $(cat "$scratch/run.log")"
  fi

  step "reinstall keeps an edited conffile"
  echo "# edited by package-test" >>/etc/hostmeter/hostmeter.yaml
  dpkg_retry -i "$deb" || fail "reinstall failed"
  grep -q 'edited by package-test' /etc/hostmeter/hostmeter.yaml || fail "the edited conffile was replaced"

  step "dpkg --remove"
  dpkg_retry --remove hostmeter || fail "dpkg --remove failed"
  [[ ! -e /usr/bin/hostmeter ]] || fail "/usr/bin/hostmeter is still there after remove"
  [[ -f /etc/hostmeter/hostmeter.yaml ]] || fail "remove deleted the conffile"
  [[ -d /var/lib/hostmeter ]] || fail "remove deleted the state directory"

  step "dpkg --purge"
  dpkg_retry --purge hostmeter || fail "dpkg --purge failed"
  installed_by_us=0
  for path in /etc/hostmeter /var/lib/hostmeter /lib/systemd/system/hostmeter.service \
    /etc/systemd/system/multi-user.target.wants/hostmeter.service /etc/systemd/system/hostmeter.service; do
    [[ ! -e $path && ! -L $path ]] || fail "$path is still there after purge"
  done
  if compgen -G '/var/lib/systemd/deb-systemd-helper-*/*hostmeter*' >/dev/null; then
    fail "deb-systemd-helper state left after purge: $(compgen -G '/var/lib/systemd/deb-systemd-helper-*/*hostmeter*')"
  fi
  if (( ! user_existed )); then
    deluser --system --quiet hostmeter >/dev/null || fail "could not remove the test's hostmeter user"
    getent group hostmeter >/dev/null && delgroup --system --quiet hostmeter >/dev/null
  fi
fi

step "passed in $((SECONDS - started)) s"
