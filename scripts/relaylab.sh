#!/usr/bin/env bash
# Relays that borrow a real identity (issue 21), against a real nginx in network namespaces.
#
#   scripts/relaylab.sh run [--out DIR] [--conns N] [--delay-ms MS] [--site-delay-ms MS]
#                                                    captures, one pcap per scenario
#   scripts/relaylab.sh compare DIR [--unmask BIN]    unmask (findings 40, 41, 42) beside ndpiReader
#
# Topology (captured on the client's device, where the appliance would sit):
#
#   client ns <P>c 10.77.1.1 ==[delay-ms]== 10.77.1.2/.3 relay ns <P>r 10.77.2.1 ==[site-delay-ms]== 10.77.2.2/.3 site ns <P>s
#
# Each leg is a plain veth, or with a delay > 0 a TAP pair joined by scripts/proxylab/tapfwd.py
# holding every frame that many ms each way (the kernel here has no netem). With both delays set
# the relays' extra leg to their origin is real: the `relayed` finding (42) can see it. Both are 0
# by default (the reduced test, tests/lab_relays.rs, stays fast).
#
# The site is nginx 1.22 (OpenSSL 3) with TLS 1.3 only and a test-CA certificate for
# www.example-site.test, HTTP/1.1 and HTTP/2 on 443, plain HTTP on 80. The relay namespace
# routes, so direct HTTPS to the site crosses the captured leg like the relays' flows do.
# Relays (shoes, `cargo install shoes`, see scripts/deps.sh relaylab):
#   shadowtls   ShadowTLS v3 on 10.77.1.2:443 borrowing the site's handshake, Shadowsocks-2022
#               (2022-blake3-aes-256-gcm) inside; the client fetches http://10.77.2.2/ through it
#   reality     REALITY + VLESS + Vision on 10.77.1.3:443 (dest: the site), fetching
#               https://www.example-site.test/ through it (TLS inside, what Vision pads)
#   probe       a plain HTTPS visitor to each relay (no key): the relay forwards it to the site
# Benign controls: direct-h1 and direct-h2 (curl straight to the site, same SNI), and
# reverse-near: nginx on 10.77.2.3:443 in the site namespace, a reverse proxy beside its origin
# (a benign relay with no extra leg to speak of), and slow-origin: scripts/proxylab/slowsrv.py on
# 10.77.2.4:443 (its own name, slow.example-site.test), thinking 5-200 ms per request, three
# requests per connection (think time, not a relay).
#
# Names carry the prefix RELAYLAB_PREFIX (default ur<pid>); everything is removed on exit.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
P="${RELAYLAB_PREFIX:-ur$$}"
SHOES="${SHOES:-}"
if [ -z "$SHOES" ]; then
	for c in /opt/unmask-relays/bin/shoes "$(command -v shoes || true)"; do
		if [ -n "$c" ] && [ -x "$c" ]; then SHOES="$c"; break; fi
	done
fi
SNI=www.example-site.test
SLOW=slow.example-site.test

die() { echo "relaylab: $*" >&2; exit 1; }

cleanup() {
	set +e
	for pidf in "${WORK:-/nonexistent}"/*.pid; do
		[ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
	done
	sleep 0.2
	for ns in "${P}c" "${P}r" "${P}s"; do
		ip netns pids "$ns" 2>/dev/null | while read -r pid; do kill "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	[ -n "${WORK:-}" ] && [ -z "${KEEP_WORK:-}" ] && rm -rf "$WORK"
}

inns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

# In the background, as the command itself (its pid is $!): a subshell would inherit the
# cleanup trap and tear the lab down when the command is signalled.
bg_in() {
	local ns="$1"; shift
	( trap - EXIT INT TERM HUP; exec ip netns exec "$ns" "$@" ) &
}

# A delay line (scripts/proxylab/tapfwd.py, a TAP pair forwarder: the kernel here has no netem)
# between devices $1 in ns $2 and $3 in ns $4, one-way delay $5 ms; plain veths when it is 0.
link() {
	local a="$1" nsa="$2" b="$3" nsb="$4" ms="$5" i
	if [ "$ms" = 0 ]; then
		ip link add "$a" type veth peer name "$b"
		ip link set "$a" netns "$nsa"; ip link set "$b" netns "$nsb"
		return
	fi
	( trap - EXIT INT TERM HUP; exec python3 "$HERE/proxylab/tapfwd.py" --dev-a "$a" --ns-a "$nsa" \
		--dev-b "$b" --ns-b "$nsb" --delay-ms "$ms" ) >"$WORK/tapfwd-$a.out" 2>"$WORK/tapfwd-$a.log" &
	echo $! >"$WORK/tapfwd-$a.pid"
	for i in $(seq 1 100); do
		grep -q READY "$WORK/tapfwd-$a.out" 2>/dev/null && return 0
		sleep 0.05
	done
	die "tapfwd $a<->$b did not start: $(cat "$WORK/tapfwd-$a.log")"
}

mac() { ip -n "$1" -br link show dev "$2" | awk '{print $3}'; }

topology() {
	ip netns add "${P}c"; ip netns add "${P}r"; ip netns add "${P}s"
	link "${P}c0" "${P}c" "${P}r0" "${P}r" "$DELAY_MS"
	link "${P}r1" "${P}r" "${P}s0" "${P}s" "$SITE_DELAY_MS"
	inns "${P}c" ip addr add 10.77.1.1/24 dev "${P}c0"
	inns "${P}r" ip addr add 10.77.1.2/24 dev "${P}r0"
	inns "${P}r" ip addr add 10.77.1.3/24 dev "${P}r0"
	inns "${P}r" ip addr add 10.77.2.1/24 dev "${P}r1"
	inns "${P}s" ip addr add 10.77.2.2/24 dev "${P}s0"
	# The reverse proxy (benign relay) beside its origin, in the site's prefix.
	inns "${P}s" ip addr add 10.77.2.3/24 dev "${P}s0"
	# The slow origin (think time, not a relay), a server of its own.
	inns "${P}s" ip addr add 10.77.2.4/24 dev "${P}s0"
	for ns in c r s; do inns "${P}$ns" ip link set lo up; done
	inns "${P}c" ip link set "${P}c0" up; inns "${P}r" ip link set "${P}r0" up
	inns "${P}r" ip link set "${P}r1" up; inns "${P}s" ip link set "${P}s0" up
	# Permanent neighbour entries: an ARP exchange across a delay line in the middle of a
	# handshake would add a round trip to it (a router's gateway entry is always warm).
	local mc mr0 mr1 ms
	mc="$(mac "${P}c" "${P}c0")"; mr0="$(mac "${P}r" "${P}r0")"
	mr1="$(mac "${P}r" "${P}r1")"; ms="$(mac "${P}s" "${P}s0")"
	inns "${P}c" ip neigh replace 10.77.1.2 lladdr "$mr0" dev "${P}c0" nud permanent
	inns "${P}c" ip neigh replace 10.77.1.3 lladdr "$mr0" dev "${P}c0" nud permanent
	inns "${P}r" ip neigh replace 10.77.1.1 lladdr "$mc" dev "${P}r0" nud permanent
	inns "${P}r" ip neigh replace 10.77.2.2 lladdr "$ms" dev "${P}r1" nud permanent
	inns "${P}r" ip neigh replace 10.77.2.3 lladdr "$ms" dev "${P}r1" nud permanent
	inns "${P}r" ip neigh replace 10.77.2.4 lladdr "$ms" dev "${P}r1" nud permanent
	inns "${P}s" ip neigh replace 10.77.2.1 lladdr "$mr1" dev "${P}s0" nud permanent
	inns "${P}c" ip route add default via 10.77.1.2
	inns "${P}s" ip route add default via 10.77.2.1
	inns "${P}r" sysctl -qw net.ipv4.ip_forward=1
	# REALITY's VLESS wants a host name as its target: the relay resolves the site's name.
	mkdir -p "/etc/netns/${P}r"
	printf '127.0.0.1 localhost\n10.77.2.2 %s\n' "$SNI" >"/etc/netns/${P}r/hosts"
	# Real MTU-sized frames on the captured leg, as on a wire (TAPs have no offloads).
	inns "${P}c" ethtool -K "${P}c0" tso off gso off gro off >/dev/null 2>&1 || true
	inns "${P}r" ethtool -K "${P}r0" tso off gso off gro off >/dev/null 2>&1 || true
}

site() {
	local d="$WORK/site"
	mkdir -p "$d/html" "$d/tmp"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=relaylab test CA" \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$SNI" -keyout "$d/site.key" -out "$d/site.csr" 2>/dev/null
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$SNI" >"$d/ext.cnf"
	openssl x509 -req -in "$d/site.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 30 -extfile "$d/ext.cnf" -out "$d/site.pem" 2>/dev/null
	# The slow origin's own name and certificate: no profile is learned for it, so it tests
	# the relay check alone.
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$SLOW" -keyout "$d/slow.key" -out "$d/slow.csr" 2>/dev/null
	printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$SLOW" >"$d/slow-ext.cnf"
	openssl x509 -req -in "$d/slow.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 30 -extfile "$d/slow-ext.cnf" -out "$d/slow.pem" 2>/dev/null
	head -c 200000 /dev/urandom | base64 >"$d/html/page.txt"
	echo "relaylab-ok" >"$d/html/index.html"
	# nginx's workers run unprivileged: the site's files must be readable to them.
	chmod 755 "$WORK" "$d" "$d/html"
	chmod 644 "$d/html/"*
	cat >"$d/nginx.conf" <<NGX
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
daemon off;
events { worker_connections 256; }
http {
  access_log $d/access.log;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
  server {
    listen 10.77.2.2:443 ssl http2;
    listen 10.77.2.2:80;
    server_name $SNI;
    ssl_certificate $d/site.pem;
    ssl_certificate_key $d/site.key;
    ssl_protocols TLSv1.3;
    root $d/html;
  }
  # A benign relay: a reverse proxy for the same name beside its origin (plain HTTP to it).
  server {
    listen 10.77.2.3:443 ssl;
    server_name $SNI;
    ssl_certificate $d/site.pem;
    ssl_certificate_key $d/site.key;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://10.77.2.2:80;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
	bg_in "${P}s" nginx -c "$d/nginx.conf" >"$WORK/nginx.log" 2>&1
	echo $! >"$WORK/nginx.pid"
	# HTTPS with 5-200 ms of think time per request, drawn afresh each time (fixed seed).
	bg_in "${P}s" python3 "$HERE/proxylab/slowsrv.py" --listen 10.77.2.4:443 --cert "$d/slow.pem" \
		--key "$d/slow.key" --token relaylab --think-ms 5,200 >"$WORK/slowsrv.log" 2>&1
	echo $! >"$WORK/slowsrv.pid"
}

relays() {
	local d="$WORK/relay"
	mkdir -p "$d"
	local keys priv pub sspw uuid
	keys="$("$SHOES" generate-reality-keypair)"
	priv="$(echo "$keys" | awk -F': *' 'tolower($0) ~ /private/ {print $2; exit}')"
	pub="$(echo "$keys" | awk -F': *' 'tolower($0) ~ /public/ {print $2; exit}')"
	sspw="$("$SHOES" generate-shadowsocks-2022-password 2022-blake3-aes-256-gcm | awk '/^Password:/ {print $2; exit}')"
	uuid="$(cat /proc/sys/kernel/random/uuid)"
	[ -n "$priv" ] && [ -n "$pub" ] && [ -n "$sspw" ] || die "shoes key generation gave: $keys / $sspw"
	cat >"$d/server.yaml" <<YML
- address: 10.77.1.2:443
  protocol:
    type: tls
    shadowtls_targets:
      "$SNI":
        password: relaylab-shadowtls
        handshake:
          address: 10.77.2.2:443
        protocol:
          type: shadowsocks
          cipher: 2022-blake3-aes-256-gcm
          password: "$sspw"
  rules:
    - masks: 0.0.0.0/0
      action: allow
      client_chain: direct
- address: 10.77.1.3:443
  protocol:
    type: tls
    reality_targets:
      "$SNI":
        private_key: "$priv"
        short_ids: ["0123456789abcdef"]
        dest: "$SNI:443"
        vision: true
        protocol:
          type: vless
          user_id: "$uuid"
  rules:
    - masks: 0.0.0.0/0
      action: allow
      client_chain: direct
YML
	cat >"$d/client.yaml" <<YML
- address: 127.0.0.1:1080
  protocol:
    type: socks
  rules:
    - masks: 0.0.0.0/0
      action: allow
      client_chain:
        address: 10.77.1.2:443
        protocol:
          type: shadowtls
          password: relaylab-shadowtls
          sni_hostname: "$SNI"
          protocol:
            type: shadowsocks
            cipher: 2022-blake3-aes-256-gcm
            password: "$sspw"
- address: 127.0.0.1:1081
  protocol:
    type: socks
  rules:
    - masks: 0.0.0.0/0
      action: allow
      client_chain:
        address: 10.77.1.3:443
        protocol:
          type: reality
          public_key: "$pub"
          short_id: "0123456789abcdef"
          sni_hostname: "$SNI"
          vision: true
          protocol:
            type: vless
            user_id: "$uuid"
YML
	bg_in "${P}r" "$SHOES" --no-reload "$d/server.yaml" >"$WORK/shoes-server.log" 2>&1
	echo $! >"$WORK/shoes-server.pid"
	bg_in "${P}c" "$SHOES" --no-reload "$d/client.yaml" >"$WORK/shoes-client.log" 2>&1
	echo $! >"$WORK/shoes-client.pid"
}

wait_port() { # ns addr port
	local i
	for i in $(seq 1 100); do
		if inns "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "nothing listens on $2:$3 in $1 (logs in $WORK)"
}

# One capture: name, then the command run N times in the client namespace.
capture() {
	local name="$1"; shift
	local pcap="$OUT/$name.pcap" ok=0 i
	bg_in "${P}c" tcpdump -i "${P}c0" -s 0 -U --immediate-mode -w "$pcap" tcp >/dev/null 2>&1
	local tpid=$!
	sleep 0.5
	for i in $(seq 1 "$CONNS"); do
		if inns "${P}c" "$@" >/dev/null 2>>"$WORK/$name.err"; then ok=$((ok + 1)); fi
	done
	# Without --immediate-mode libpcap hands packets over a block at a time (up to a second
	# late), and on a busy machine tcpdump lags behind the wire: what the kernel still holds
	# when it is stopped is lost (the last flow or two, with the delay lines). It writes each
	# packet as it reads it (-U), so it has caught up once the file stops growing.
	local size=-1 now
	for i in $(seq 1 50); do
		sleep 0.3
		now="$(stat -c %s "$pcap" 2>/dev/null || echo 0)"
		[ "$now" = "$size" ] && break
		size="$now"
	done
	kill -INT "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null || true
	echo "$name $ok/$CONNS" | tee -a "$OUT/manifest.txt"
}

run() {
	OUT=/tmp/relaylab-out; CONNS=10; DELAY_MS=0; SITE_DELAY_MS=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--out) OUT="$2"; shift 2 ;;
		--conns) CONNS="$2"; shift 2 ;;
		--delay-ms) DELAY_MS="$2"; shift 2 ;;
		--site-delay-ms) SITE_DELAY_MS="$2"; shift 2 ;;
		*) die "unknown option $1 (accepted: --out DIR, --conns N, --delay-ms MS, --site-delay-ms MS)" ;;
		esac
	done
	for v in "$DELAY_MS" "$SITE_DELAY_MS"; do
		[[ "$v" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "delay '$v' is not a number of milliseconds (0: a plain veth)"
	done
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
	[ -n "$SHOES" ] || die "shoes not found: bash scripts/deps.sh relaylab installs it in /opt/unmask-relays"
	mkdir -p "$OUT"; : >"$OUT/manifest.txt"
	echo "delay_ms=$DELAY_MS site_delay_ms=$SITE_DELAY_MS conns=$CONNS" >"$OUT/params.txt"
	WORK="$(mktemp -d /tmp/relaylab.XXXXXX)"
	trap cleanup EXIT INT TERM HUP
	topology
	site
	wait_port "${P}c" 10.77.2.2 443
	wait_port "${P}c" 10.77.2.4 443
	relays
	wait_port "${P}c" 127.0.0.1 1080
	wait_port "${P}c" 127.0.0.1 1081
	local ca="$WORK/site/ca.pem"
	local direct=(curl -sSf --max-time 10 --cacert "$ca" --resolve "$SNI:443:10.77.2.2")
	capture direct-h1 "${direct[@]}" --http1.1 -o /dev/null "https://$SNI/page.txt"
	capture direct-h2 "${direct[@]}" --http2 -o /dev/null "https://$SNI/page.txt"
	capture reverse-near curl -sSf --max-time 10 --cacert "$ca" --resolve "$SNI:443:10.77.2.3" \
		--http1.1 -o /dev/null "https://$SNI/page.txt"
	# Three requests on one kept-alive connection, each thought about for its own time.
	local slow="https://$SLOW/probe"
	capture slow-origin curl -sSf --max-time 10 --cacert "$ca" --resolve "$SLOW:443:10.77.2.4" \
		--http1.1 -o /dev/null -o /dev/null -o /dev/null "$slow" "$slow" "$slow"
	capture shadowtls curl -sSf --max-time 10 --socks5-hostname 127.0.0.1:1080 -o /dev/null http://10.77.2.2/page.txt
	capture reality curl -sSf --max-time 10 --cacert "$ca" \
		--socks5-hostname 127.0.0.1:1081 -o /dev/null "https://$SNI/page.txt"
	capture probe-shadowtls curl -sSf --max-time 10 --cacert "$ca" --resolve "$SNI:443:10.77.1.2" \
		-o /dev/null "https://$SNI/index.html"
	capture probe-reality curl -sSf --max-time 10 --cacert "$ca" --resolve "$SNI:443:10.77.1.3" \
		-o /dev/null "https://$SNI/index.html"
	mkdir -p "$OUT/logs"; cp "$WORK"/*.log "$WORK"/*.err "$OUT/logs/" 2>/dev/null || true
}

case "${1:-}" in
run) shift; run "$@" ;;
compare) shift; exec python3 "$HERE/relaylab_compare.py" "$@" ;;
*) die "usage: relaylab.sh run [--out DIR] [--conns N] [--delay-ms MS] [--site-delay-ms MS] | compare DIR [--unmask BIN]" ;;
esac
