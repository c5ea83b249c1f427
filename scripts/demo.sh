#!/usr/bin/env bash
# The main job on a built-in default: the namespace lab with real traffic through unmask,
# inline in block mode.
#
#   client (10.77.0.1) <-> [ unmask inline, block mode ] <-> server (10.77.0.2, 10.77.0.3)
#
# Traffic: benign HTTPS (curl against openssl s_server with a CA-signed certificate), plain
# HTTP (python http.server), a fake TLS handshake, SSH on port 443, an HTTP request with no
# User-Agent, and an upload-heavy flow. Prints what was alerted, what was blocked, that the
# benign traffic passed, and where metrics are served (with a sample of them). Needs root
# (network namespaces, XDP); installs what it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/lab.sh
. scripts/lib/lab.sh

work=""
unmask_pid=""
lab_cleanup_on_exit
lab_kill_at_exit unmask_pid
# shellcheck disable=SC2016 # expanded at exit
lab_at_exit '[ -z "$work" ] || rm -rf "$work"'
# LAB_PREFIX, else unmask (configs/lab.toml's ports), else a numbered one while another
# demo runs.
lab_claim unmask
P="$LAB_P"

bash scripts/deps.sh
cargo build --release --locked --quiet --bin unmask
bin=$(readlink -f "${CARGO_TARGET_DIR:-$PWD/target}")/release/unmask
work=$(mktemp -d /tmp/unmask-demo.XXXXXX)

in_ns() { local ns="$1"; shift; ip netns exec "$P-$ns" "$@"; }

echo "== lab"
lab_up
ip -n "$LAB_NS_SERVER" addr add 10.77.0.3/24 dev "$LAB_IF_SERVER"

# A private CA and a certificate for www.lab.example, so benign HTTPS is really benign.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
	-out "$work/ca.pem" -days 30 -subj "/O=Unmask Lab CA/CN=Unmask Lab Root" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/leaf.key" \
	-out "$work/leaf.csr" -subj "/O=Unmask Lab/CN=www.lab.example" 2>/dev/null
printf 'subjectAltName=DNS:www.lab.example\nextendedKeyUsage=serverAuth\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
	-days 30 -extfile "$work/ext.cnf" -out "$work/leaf.pem" 2>/dev/null

mkdir -p "$work/www"
echo "<html><body>unmask lab</body></html>" >"$work/www/index.html"
head -c 5000000 /dev/urandom >"$work/www/big"

peer=(python3 "$PWD/scripts/peer.py")
(cd "$work/www" && in_ns server openssl s_server -quiet -accept 10.77.0.2:443 \
	-cert "$work/leaf.pem" -key "$work/leaf.key" -WWW >/dev/null 2>&1 &)
(cd "$work/www" && in_ns server python3 -m http.server 80 --bind 10.77.0.2 >/dev/null 2>&1 &)
in_ns server "${peer[@]}" sink --listen 10.77.0.3:443 --out "$work/ssh.txt" --banner 'SSH-2.0-OpenSSH_9.2p1\r\n' &
in_ns server "${peer[@]}" sink --listen 10.77.0.2:8443 --out "$work/faketls.txt" &
in_ns server "${peer[@]}" sink --listen 10.77.0.2:9000 --out "$work/upload.txt" &
sleep 1

config="$PWD/configs/lab.toml"
if [ "$P" != unmask ]; then
	sed -e "s/\"unmaska\", \"unmaskb\"/\"${P}a\", \"${P}b\"/" \
		-e "s|/run/unmask/unmask.sock|/run/unmask/${P}.sock|" configs/lab.toml >"$work/lab.toml"
	config="$work/lab.toml"
fi
echo "== unmask run --config $config (inline, block mode, fail-open, bypass of clean flows)"
# Not through in_ns: $! must be unmask itself (ip netns exec execs it), not a subshell.
ip netns exec "$P-appliance" "$bin" run --config "$config" --eve "$work/eve.json" \
	--report "$work/report.json" 2>"$work/unmask.log" &
unmask_pid=$!
lab_wait_ready "$unmask_pid" 100 "$work/unmask.log" || true
grep "READY" "$work/unmask.log" || { cat "$work/unmask.log"; exit 1; }

echo "== traffic"
result() { printf '  %-34s %s\n' "$1" "$2"; }
code=$(in_ns client curl -s -o "$work/big.out" -w '%{http_code}' --cacert "$work/ca.pem" \
	--resolve www.lab.example:443:10.77.0.2 https://www.lab.example/big || true)
same=$(cmp -s "$work/big.out" "$work/www/big" && echo "intact" || echo "DIFFERS")
result "benign HTTPS download (5 MB)" "HTTP $code, $same"
code=$(in_ns client curl -s -o /dev/null -w '%{http_code}' http://10.77.0.2/ || true)
result "plain HTTP" "HTTP $code"
in_ns client "${peer[@]}" send --to 10.77.0.2:8443 --hello-hex 1603010040010000ff0303 --chunks 10 >/dev/null 2>&1
result "fake TLS handshake -> :8443" "server received $(cat "$work/faketls.txt") of 10000 bytes"
in_ns client "${peer[@]}" send --to 10.77.0.3:443 --hello 'SSH-2.0-OpenSSH_9.2p1\r\n' --chunks 10 >/dev/null 2>&1
result "SSH on port 443" "server received $(cat "$work/ssh.txt") of 10000 bytes"
code=$(in_ns client curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'User-Agent:' http://10.77.0.2/ || true)
result "HTTP without User-Agent" "HTTP $code"
in_ns client "${peer[@]}" send --to 10.77.0.2:9000 --chunks 200 --chunk-size 10000 --pause 0.002 >/dev/null 2>&1
result "upload-heavy flow (2 MB up)" "server received $(cat "$work/upload.txt") bytes"
ping_ok=$(in_ns client ping -c 2 -W 2 10.77.0.2 >/dev/null 2>&1 && echo passes || echo FAILS)
result "ping" "$ping_ok"

metrics_url="http://127.0.0.1:9477/metrics"
echo
echo "== metrics (Prometheus text, served inside $P-appliance: ip netns exec $P-appliance curl -s $metrics_url)"
in_ns appliance curl -s --max-time 5 "$metrics_url" >"$work/metrics.txt" || true
grep -E '^unmask_(xdp_packets_total\{.*reason="(blocked|bypassed|non_tcp|to_socket)"|detect_findings_total|flow_blocked|flow_bypassed_total|ring_rx_packets_total|process_ready)' \
	"$work/metrics.txt" | awk '$NF != 0 { print "  " $0 }' | grep . || echo "  (no metrics answered at $metrics_url)"

kill -TERM "$unmask_pid"
wait "$unmask_pid" || true
unmask_pid=""
echo
echo "== unmask"
sed -n '/unmask run:/,$p' "$work/unmask.log"
echo
echo "== alerts (EVE: $work/eve.json, kept until this script exits)"
python3 - "$work/eve.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event_type"] == "alert":
        a, u = r["alert"], r["unmask"]
        ev = ", ".join(f"{k}={v}" for k, v in u["evidence"].items())
        print(f'  [{a["action"]:7}] {r["src_ip"]}:{r["src_port"]} -> {r["dest_ip"]}:{r["dest_port"]} '
              f'{u["finding"]} ({u["mitre"]["technique_id"]}, {u["mitre"]["tunable"]}, '
              f'confidence {u["confidence"]}): {ev[:160]}')
print()
print("== flows")
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event_type"] == "flow":
        f = r["flow"]
        verdict = "BLOCKED" if f.get("action") == "drop" else ("alerted" if f["alerted"] else "passed")
        kernel = ""
        if f.get("bypass"):
            b = f["bypassed"]
            kernel = f' (bypassed: {b["pkts_toserver"] + b["pkts_toclient"]} of them forwarded by the kernel alone)'
        print(f'  {r["src_ip"]}:{r["src_port"]} -> {r["dest_ip"]}:{r["dest_port"]:<5} '
              f'{r.get("app_proto", "unknown"):8} {verdict:8} pkts {f["pkts_toserver"]}/{f["pkts_toclient"]}{kernel}')
PY
