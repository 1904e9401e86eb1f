#!/usr/bin/env bash
# Self-test for scripts/consumer.py, the billing consumer that hostmeter's tests ship to.
# Starts it on free ports with a temporary database, drives every ingest path and fault
# mode with curl, and checks /stats at the end. Needs python3 (with the `cloudevents`
# package) and curl. Last line: "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CONSUMER="$HERE/consumer.py"
WORK="$(mktemp -d)"
CONSUMER_PID=""
PASSED=0
FAILED=0

cleanup() {
    if [[ -n "$CONSUMER_PID" ]] && kill -0 "$CONSUMER_PID" 2>/dev/null; then
        kill "$CONSUMER_PID" 2>/dev/null || true
        wait "$CONSUMER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
# check NAME ACTUAL EXPECTED
check() {
    if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}

# jget FILE KEY...: print the value at that path of a JSON file (strings raw, others as JSON).
jget() {
    python3 - "$@" <<'PY'
import json, sys
try:
    value = json.load(open(sys.argv[1]))
    for key in sys.argv[2:]:
        value = value[int(key)] if isinstance(value, list) else value[key]
except Exception as exc:  # noqa: BLE001 - test helper: report, don't crash
    print(f"<{type(exc).__name__}: {exc}>")
    sys.exit(0)
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# request METHOD URL [curl args...]: sets CODE (HTTP status or 000) and RC (curl's exit status);
# the body is in $WORK/resp and the headers in $WORK/hdrs.
request() {
    local method="$1" url="$2"
    shift 2
    RC=0
    : >"$WORK/resp"
    : >"$WORK/hdrs"
    CODE="$(curl -sS --max-time 15 -X "$method" -o "$WORK/resp" -D "$WORK/hdrs" \
        -w '%{http_code}' "$@" "$url" 2>"$WORK/curl_err")" || RC=$?
}

# post PATH CONTENT_TYPE BODY [curl args...]: POST to the main port.
post() {
    local path="$1" ctype="$2" body="$3"
    shift 3
    request POST "http://127.0.0.1:$PORT$path" -H "Content-Type: $ctype" --data-binary "$body" "$@"
}

# mode JSON: set the fault mode through the control port.
mode() {
    request POST "http://127.0.0.1:$CONTROL/mode" -H 'Content-Type: application/json' --data-binary "$1"
    if [[ "$CODE" != 200 ]]; then fail "set mode $1 (HTTP $CODE: $(cat "$WORK/resp"))"; fi
}

control_get() { request GET "http://127.0.0.1:$CONTROL$1"; }

ev() { printf '{"event_id":"%s","event_type":"resource_usage","version":"1.0","metrics":{"cpu_seconds":1}}' "$1"; }
ce() { # ce ID [SOURCE]: a structured CloudEvent carrying a usage event
    local source_attr=""
    if [[ $# -ge 2 ]]; then source_attr="\"source\":\"$2\","; fi
    printf '{"specversion":"1.0","id":"%s",%s"type":"io.hostmeter.usage","time":"2025-11-21T12:00:30Z","subject":"vm-42","datacontenttype":"application/json","data":%s}' \
        "$1" "$source_attr" "$(ev "$1")"
}

JSON=application/json
CE_BATCH=application/cloudevents-batch+json

# ---------------------------------------------------------------- start
PORT_FILE="$WORK/ports.json"
python3 "$CONSUMER" --db "$WORK/consumer.db" --port 0 --port-file "$PORT_FILE" \
    >"$WORK/stdout" 2>"$WORK/stderr" &
CONSUMER_PID=$!
for _ in $(seq 1 50); do
    [[ -s "$PORT_FILE" ]] && break
    sleep 0.1
done
if [[ ! -s "$PORT_FILE" ]]; then
    echo "consumer did not write $PORT_FILE in 5 s; stderr:" >&2
    cat "$WORK/stderr" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
PORT="$(jget "$PORT_FILE" port)"
CONTROL="$(jget "$PORT_FILE" control_port)"
for _ in $(seq 1 50); do
    [[ -s "$WORK/stdout" ]] && break
    sleep 0.1
done
check "startup line" "$(head -n1 "$WORK/stdout")" \
    "consumer listening on 127.0.0.1:$PORT (control 127.0.0.1:$CONTROL)"

# ---------------------------------------------------------------- /events
BATCH12="[$(ev e1),$(ev e2)]"
post /events "$JSON" "$BATCH12" -H 'Idempotency-Key: batch-12' -H 'Authorization: Bearer s3cret'
check "batch of 2: status" "$CODE" 200
check "batch of 2: accepted" "$(jget "$WORK/resp" accepted)" 2
check "batch of 2: duplicates" "$(jget "$WORK/resp" duplicates)" 0

post /events "$JSON" "$BATCH12"
check "same batch again: status" "$CODE" 200
check "same batch again: accepted" "$(jget "$WORK/resp" accepted)" 0
check "same batch again: duplicates" "$(jget "$WORK/resp" duplicates)" 2

post /events "$JSON" '[{"event_id": 1}]'
check "event_id not a string: 400" "$CODE" 400
check "event_id not a string: error names it" \
    "$(jget "$WORK/resp" error | grep -c 'event_id must be a string' || true)" 1

post /events "$JSON" 'this is not json'
check "malformed body: 400" "$CODE" 400

post /events text/plain "[$(ev e-ct)]"
check "wrong content type: 415" "$CODE" 415

post /nowhere "$JSON" "[$(ev e-404)]"
check "unknown path: 404" "$CODE" 404

# ---------------------------------------------------------------- status mode
mode '{"mode":"status","status":503,"retry_after":"7","count":1}'
post /events "$JSON" "[$(ev e3)]"
check "status mode: 503" "$CODE" 503
check "status mode: Retry-After" "$(grep -i '^Retry-After:' "$WORK/hdrs" | tr -d '\r' | cut -d' ' -f2-)" 7
post /events "$JSON" "[$(ev e3)]"
check "after count 1: 200" "$CODE" 200
check "after count 1: accepted" "$(jget "$WORK/resp" accepted)" 1

# ---------------------------------------------------------------- poison
mode '{"mode":"poison","event_ids":["e4"]}'
post /events "$JSON" "[$(ev e4),$(ev e5)]"
check "poison batch: 400" "$CODE" 400
check "poison batch: error" "$(jget "$WORK/resp" error)" "poison event e4"
post /events "$JSON" "[$(ev e5)]"
check "clean batch under poison: 200" "$CODE" 200
check "clean batch under poison: accepted" "$(jget "$WORK/resp" accepted)" 1
mode '{"mode":"ok"}'

# ---------------------------------------------------------------- cut
mode '{"mode":"cut","count":1}'
post /events "$JSON" "[$(ev e6)]"
check "cut: curl fails" "$([[ $RC -ne 0 ]] && echo failed || echo "rc=$RC code=$CODE")" failed
control_get /events
check "cut: nothing stored" "$(jget "$WORK/resp" | grep -c '"e6"' || true)" 0
post /events "$JSON" "[$(ev e6)]"
check "after cut: stored once" "$CODE/$(jget "$WORK/resp" accepted)" 200/1

mode '{"mode":"cut","reset":false,"count":1}'
post /events "$JSON" "[$(ev e6b)]"
check "cut with FIN: curl fails" "$([[ $RC -ne 0 ]] && echo failed || echo "rc=$RC code=$CODE")" failed

mode '{"mode":"cut_after_store","count":1}'
post /events "$JSON" "[$(ev e7)]"
check "cut_after_store: curl fails" "$([[ $RC -ne 0 ]] && echo failed || echo "rc=$RC code=$CODE")" failed
post /events "$JSON" "[$(ev e7)]"
check "cut_after_store: resend is a duplicate" \
    "$CODE/$(jget "$WORK/resp" accepted)/$(jget "$WORK/resp" duplicates)" 200/0/1

# ---------------------------------------------------------------- hang, slow
mode '{"mode":"hang","seconds":1,"count":1}'
START=$(date +%s.%N)
post /events "$JSON" "[$(ev e8)]"
ELAPSED=$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]) >= 0.9)" "$START" "$(date +%s.%N)")
check "hang: curl fails with no reply" "$([[ $RC -ne 0 && $CODE == 000 ]] && echo failed || echo "rc=$RC code=$CODE")" failed
check "hang: lasted about 1 s" "$ELAPSED" True

mode '{"mode":"slow","seconds":0.3,"count":1}'
post /events "$JSON" "[$(ev e8)]"
check "slow: 200 accepted 1" "$CODE/$(jget "$WORK/resp" accepted)" 200/1

# ---------------------------------------------------------------- refuse
mode '{"mode":"refuse"}'
post /events "$JSON" "[$(ev e9)]"
check "refuse: connection refused (curl rc 7)" "$RC" 7
control_get /stats
check "refuse: mode in stats" "$(jget "$WORK/resp" mode)" refuse
mode '{"mode":"ok"}'
post /events "$JSON" "[$(ev e9)]"
check "ok again on the same port: 200 accepted 1" "$CODE/$(jget "$WORK/resp" accepted)" 200/1

# ---------------------------------------------------------------- cloudevents
post /cloudevents "$CE_BATCH" "[$(ce c1 //hostmeter/host-7)]"
check "cloudevents valid: 200 accepted 1" "$CODE/$(jget "$WORK/resp" accepted)" 200/1
post /cloudevents "$CE_BATCH" "[$(ce c2)]"
check "cloudevents missing source: 400" "$CODE" 400
check "cloudevents missing source: error names it" \
    "$(jget "$WORK/resp" error | grep -c 'source' || true)" 1
post /cloudevents "$JSON" "[$(ce c3 //hostmeter/host-7)]"
check "cloudevents wrong content type: 415" "$CODE" 415

# ---------------------------------------------------------------- 413
truncate -s 17M "$WORK/big"
post /events "$JSON" "@$WORK/big"
check "17 MiB body (Expect: 100-continue): 413" "$CODE" 413
post /events "$JSON" "@$WORK/big" -H 'Expect:'
check "17 MiB body (no Expect): 413" "$CODE" 413

# ---------------------------------------------------------------- recorded requests
control_get /requests
check "request 1: Idempotency-Key recorded" "$(jget "$WORK/resp" 0 idempotency_key)" batch-12
check "request 1: Authorization recorded" "$(jget "$WORK/resp" 0 authorization)" "Bearer s3cret"
check "request 1: content type recorded" "$(jget "$WORK/resp" 0 content_type)" "$JSON"
check "request 1: events recorded" "$(jget "$WORK/resp" 0 events)" 2

# ---------------------------------------------------------------- stats
# Requests: 9 x 200, 4 x 400 (two malformed, poison, missing source), 2 x 415, 1 x 404,
# 1 x 503, 4 x 0 (cut twice, cut_after_store, hang: no complete response), 2 x 413.
# Events: e1 e2 e3 e5 e6 e7 e8 e9 c1 = 9 unique; e1, e2 and e7 delivered twice = 12.
control_get /stats
cp "$WORK/resp" "$WORK/stats.json"
echo "stats: $(cat "$WORK/stats.json")"
check "stats: requests" "$(jget "$WORK/stats.json" requests)" 23
check "stats: by_status" "$(jget "$WORK/stats.json" by_status)" \
    '{"0": 4, "200": 9, "400": 4, "404": 1, "413": 2, "415": 2, "503": 1}'
check "stats: unique_events" "$(jget "$WORK/stats.json" unique_events)" 9
check "stats: deliveries" "$(jget "$WORK/stats.json" deliveries)" 12
check "stats: duplicates" "$(jget "$WORK/stats.json" duplicates)" 3
check "stats: conflicts" "$(jget "$WORK/stats.json" conflicts)" 0
check "stats: mode" "$(jget "$WORK/stats.json" mode)" ok
control_get /events
check "events: 9 bodies, in arrival order" \
    "$(python3 -c 'import json,sys; print(",".join(e["event_id"] for e in json.load(open(sys.argv[1]))))' "$WORK/resp")" \
    "e1,e2,e3,e5,e6,e7,e8,e9,c1"

request POST "http://127.0.0.1:$CONTROL/reset"
control_get /stats
check "reset: empty" "$(jget "$WORK/resp" requests)/$(jget "$WORK/resp" unique_events)" 0/0

# ---------------------------------------------------------------- SIGTERM
kill -TERM "$CONSUMER_PID"
EXITED=no
for _ in $(seq 1 50); do
    if ! kill -0 "$CONSUMER_PID" 2>/dev/null; then EXITED=yes; break; fi
    sleep 0.1
done
STATUS=killed
if [[ $EXITED == yes ]]; then
    STATUS=0
    wait "$CONSUMER_PID" || STATUS=$?
    CONSUMER_PID=""
fi
check "SIGTERM: exits 0 within 5 s" "$STATUS" 0

if [[ $FAILED -ne 0 ]]; then
    echo "--- consumer stderr (last 40 lines)"
    tail -n 40 "$WORK/stderr"
fi
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
