#!/usr/bin/env bash
# State upstream benchmark: a 60,000-sensor site on the real state bus and the real TCP state port,
# measured by a client that counts the bytes it receives, side by side with the same change stream
# costed as Home-Assistant-style MQTT and as XML polled at 1 Hz; latency from a sim PIR edge to
# `nvrctl watch --json` output, p50/p99, on loopback and through a 256 kbit/s `tc tbf` link in a
# network namespace this script creates, with the site's load crossing the same link; through
# that link, the time from starting `nvrctl watch` to a live view, first with an empty catalog
# cache and then with the catalog known; and the site's MQTT publisher bridged by mosquitto
# (examples/mosquitto-bridge.conf) over the link to an office broker, bytes per change.
#
# Usage (as root, for the namespace): scripts/bench-state.sh [MEASURE_SECONDS] [EDGES]
#   MEASURE_SECONDS  how long the byte counter counts after the snapshot (default 60)
#   EDGES            PIR edges per latency run (default 100)
#
# Latency source: when `edgenvr check-config` accepts a config with `[state] listen` and a
# `backend = "sim"` PIR, a real box (`edgenvr run`) is started and driven through its control
# socket (`set NAME high|low`, what `edgenvr sim set` sends; on the idle box also with the
# `edgenvr sim set` command itself, as version 1 of this benchmark did); otherwise the edges are set on the load generator's own bus through its
# --trigger-stdin (an in-process edge) and the script says so.
#
# The MQTT cost is computed per change (PUBLISH packet formula, see state_site.rs) and, on the
# loopback run, also measured: the site publishes the same changes to a local mosquitto and the
# broker's $SYS byte and publish counters are read over the counting window.
#
# Pieces: firmware/daemon/examples/state_site.rs (the site), scripts/bench_state_client.py (the
# byte counter), scripts/bench_state_latency.py (edges and timestamps),
# scripts/bench_state_connect.py (connect to live view). Builds are the dev
# profile (dependencies at opt-level 1), so the figures are conservative.
set -euo pipefail
cd "$(dirname "$0")/.."

measure_s=${1:-60}
edges=${2:-100}
# Seconds after the byte counter's first snapshot before it counts: over the slow link the
# catalog takes ~45 s, the client falls behind the bus's 5 s event ring meanwhile and is sent a
# fresh snapshot plus the changes queued behind it; 15 s lets that drain (see the client's doc).
settle_s=15
# 256 kbit/s = 32,000 B/s: the brief's slowest uplink.
link_bytes_per_s=32000

if [ "$(id -u)" != 0 ]; then
    echo "bench-state: run as root (it creates a network namespace)" >&2
    exit 1
fi

cargo build --quiet -p edgenvr --bin edgenvr --example state_site
cargo build --quiet -p nvrctl
edgenvr=$PWD/target/debug/edgenvr
site=$PWD/target/debug/examples/state_site
nvrctl=$PWD/target/debug/nvrctl

work=$(mktemp -d /tmp/bench-state.XXXXXX)
ns=edgenvr-bench-$$
veth_box=vbox$$
veth_up=vup$$
# 10.231.0.0/24: a private range unlikely to clash with the host's own networks.
box_ip=10.231.0.1
up_ip=10.231.0.2
pids=()

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ip link del "$veth_box" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The upstream end lives in its own namespace behind a veth pair; both directions are shaped to
# 256 kbit/s with a token bucket (4 KiB burst, packets queued for at most 400 ms, then dropped).
ip netns add "$ns"
ip link add "$veth_box" type veth peer name "$veth_up"
ip link set "$veth_up" netns "$ns"
ip addr add "$box_ip/24" dev "$veth_box"
ip link set "$veth_box" up
ip netns exec "$ns" ip addr add "$up_ip/24" dev "$veth_up"
ip netns exec "$ns" ip link set "$veth_up" up
ip netns exec "$ns" ip link set lo up
tc qdisc add dev "$veth_box" root tbf rate 256kbit burst 4kb latency 400ms
ip netns exec "$ns" tc qdisc add dev "$veth_up" root tbf rate 256kbit burst 4kb latency 400ms

# Waits for `listening state ADDR` in a log and prints the port.
state_port_of() {
    local log=$1 i
    for i in $(seq 1 600); do
        if grep -q 'listening state ' "$log" 2>/dev/null; then
            grep -o 'listening state [^ ]*' "$log" | head -1 | sed 's/.*://'
            return 0
        fi
        sleep 0.1
    done
    echo "bench-state: no 'listening state' line in $log" >&2
    cat "$log" >&2
    return 1
}

# Does this edgenvr's `run` take a state port and a sim PIR?
box_config() {
    local dir=$1 listen=$2
    cat >"$dir/config.toml" <<EOF
[box]
name = "bench-box"
[storage]
dir = "$dir/store"
[state]
listen = "$listen"
[control]
socket = "$dir/control.sock"
[[sensor]]
name = "pir-bench"
kind = "pir"
backend = "sim"
# The shortest debounce the sim pin allows through the same driver as a real PIR; hold 0 so
# every level the script sets is an edge on the bus.
debounce = "1ms"
hold = "0s"
EOF
}
mkdir -p "$work/probe"
box_config "$work/probe" "127.0.0.1:0"
if "$edgenvr" check-config --config "$work/probe/config.toml" >/dev/null 2>&1; then
    latency_source=box
else
    latency_source=site
fi

# "EPOCH BYTES PACKETS DROPPED" sent by the qdisc of the box's end of the link (Ethernet, IP and
# TCP headers included: what the 256 kbit/s really carries towards upstream).
link_stats() {
    local stats
    stats=$(tc -s qdisc show dev "$veth_box" | grep -o 'Sent [0-9]* bytes [0-9]* pkt (dropped [0-9]*')
    echo "$(date +%s.%N) $(echo "$stats" | awk '{print $2, $4, $7}')"
}

# A local mosquitto for the loopback run: the site also publishes its changes there, and the
# broker's own counters ($SYS, refreshed every second) say what they cost on the wire.
mqtt_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nsys_interval 1\n' "$mqtt_port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 50); do
    mosquitto_sub -p "$mqtt_port" -t '$SYS/broker/version' -C 1 -W 1 >/dev/null 2>&1 && break
    sleep 0.1
done
mosquitto_sub -p "$mqtt_port" -F '%U %t %p' -t '$SYS/broker/bytes/received' \
    -t '$SYS/broker/publish/messages/received' >"$work/mqtt-sys.txt" 2>/dev/null &
pids+=("$!")

# One run: site (and box) bound on BIND, clients connecting to CONNECT, prefixed with WRAP.
run_link() {
    local name=$1 bind=$2 connect=$3 measure_link=$4 site_mqtt=$5
    shift 5
    local wrap=("$@")
    local dir=$work/$name
    mkdir -p "$dir"
    mkfifo "$dir/trigger"
    # Held open read-write so neither the site nor the latency driver blocks opening it.
    exec {trigger_fd}<>"$dir/trigger"
    local mqtt_args=()
    if [ "$site_mqtt" = yes ]; then
        mqtt_args=(--mqtt "127.0.0.1:$mqtt_port")
    fi
    "$site" --listen "$bind:0" --trigger-stdin "${mqtt_args[@]}" <&"$trigger_fd" >"$dir/site.jsonl" 2>"$dir/site.log" &
    local site_pid=$!
    pids+=("$site_pid")
    exec {trigger_fd}>&-
    local site_port
    site_port=$(state_port_of "$dir/site.log")

    local latency_args
    if [ "$latency_source" = box ]; then
        box_config "$dir" "$bind:0"
        "$edgenvr" store init "$dir/store" --size 16MiB --slots 8 >/dev/null 2>&1
        "$edgenvr" run --config "$dir/config.toml" >"$dir/box.log" 2>&1 &
        pids+=("$!")
        local box_port
        box_port=$(state_port_of "$dir/box.log")
        latency_args=(--sensor pir-bench --trigger socket --socket "$dir/control.sock"
            -- "${wrap[@]}" "$nvrctl" watch --json "$connect:$box_port")
    else
        latency_args=(--sensor bench_pir --trigger fifo --fifo "$dir/trigger"
            -- "${wrap[@]}" "$nvrctl" watch --json "$connect:$site_port")
    fi

    "${wrap[@]}" python3 scripts/bench_state_client.py "$connect:$site_port" "$measure_s" "$settle_s" "$dir/counting" \
        >"$dir/client.json" &
    local client_pid=$!
    pids+=("$client_pid")
    (
        while [ ! -e "$dir/counting" ]; do sleep 0.1; done
        date +%s.%N >"$dir/window-start"
        if [ "$measure_link" = yes ]; then link_stats >"$dir/link-start"; fi
    ) &
    pids+=("$!")
    # The edges start once the byte counter is counting: the latency is measured under the
    # site's steady load, not behind its catalog.
    python3 scripts/bench_state_latency.py --edges "$edges" --wait-file "$dir/counting" \
        "${latency_args[@]}" >"$dir/latency.json"
    wait "$client_pid"
    date +%s.%N >"$dir/window-end"
    if [ "$measure_link" = yes ]; then
        link_stats >"$dir/link-end"
        # Through the slow link, the site's load still on: `nvrctl watch` to a live view with an
        # empty catalog cache, then again with the catalog it kept.
        mkdir -p "$dir/cache"
        local run
        for run in cold warm; do
            python3 scripts/bench_state_connect.py --cache "$dir/cache" --follow-seconds 20 \
                -- "${wrap[@]}" "$nvrctl" watch --json "$connect:$site_port" >"$dir/connect-$run.json"
        done
    fi
    kill "$site_pid"
    wait "$site_pid" || true
}

# The site's own MQTT publisher to a broker here, bridged over the slow link to an office broker
# in the namespace: what crosses the link per change.
run_bridge() {
    local dir=$work/bridge
    mkdir -p "$dir"
    local site_port office_port
    site_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    office_port=$site_port
    printf 'listener %s %s\nallow_anonymous true\n' "$office_port" "$up_ip" >"$dir/office.conf"
    ip netns exec "$ns" mosquitto -c "$dir/office.conf" >"$dir/office.log" 2>&1 &
    pids+=("$!")
    {
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$site_port"
        sed -e "s/^address .*/address $up_ip:$office_port/" -e "s/edgenvr-bridge-SITE/edgenvr-bridge-bench/" \
            examples/mosquitto-bridge.conf
    } >"$dir/site.conf"
    mosquitto -c "$dir/site.conf" >"$dir/site-broker.log" 2>&1 &
    pids+=("$!")
    sleep 1
    "$site" --listen "127.0.0.1:0" --mqtt-publisher "mqtt://127.0.0.1:$site_port" >"$dir/site.jsonl" 2>"$dir/site.log" &
    local site_pid=$!
    pids+=("$site_pid")
    # The office watches every box through its broker.
    mkdir -p "$dir/cache"
    XDG_CACHE_HOME="$dir/cache" ip netns exec "$ns" "$nvrctl" watch --json --mqtt "mqtt://$up_ip:$office_port" \
        >"$dir/office-watch.jsonl" 2>"$dir/office-watch.log" &
    pids+=("$!")
    # The catalog and first snapshot cross first; then count.
    sleep "$settle_s"
    date +%s.%N >"$dir/window-start"
    link_stats >"$dir/link-start"
    sleep "$measure_s"
    link_stats >"$dir/link-end"
    date +%s.%N >"$dir/window-end"
    kill "$site_pid"
    wait "$site_pid" || true
}

# Latency with nothing else running: the box idle, no site, no broker load.
run_quiet() {
    local dir=$work/quiet
    mkdir -p "$dir"
    box_config "$dir" "127.0.0.1:0"
    "$edgenvr" store init "$dir/store" --size 16MiB --slots 8 >/dev/null 2>&1
    "$edgenvr" run --config "$dir/config.toml" >"$dir/box.log" 2>&1 &
    local box_pid=$!
    pids+=("$box_pid")
    local box_port
    box_port=$(state_port_of "$dir/box.log")
    # The edge as the box sees it (a control-socket `set`, what `edgenvr sim set` sends), then as
    # version 1 of this benchmark timed it (the `edgenvr sim set` process start included).
    XDG_CACHE_HOME="$dir" python3 scripts/bench_state_latency.py --edges "$edges" --sensor pir-bench \
        --trigger socket --socket "$dir/control.sock" \
        -- "$nvrctl" watch --json "127.0.0.1:$box_port" >"$dir/latency.json"
    XDG_CACHE_HOME="$dir" python3 scripts/bench_state_latency.py --edges "$edges" --sensor pir-bench \
        --trigger sim --edgenvr "$edgenvr" --config "$dir/config.toml" \
        -- "$nvrctl" watch --json "127.0.0.1:$box_port" >"$dir/latency-sim.json"
    kill "$box_pid"
    wait "$box_pid" || true
}

if [ "$latency_source" = box ]; then
    echo "bench-state: latency on loopback, idle box, nothing else running ($edges edges)..." >&2
    run_quiet
fi
echo "bench-state: loopback run (${measure_s}s of counting, $edges edges)..." >&2
run_link loopback 127.0.0.1 127.0.0.1 no yes
echo "bench-state: 256 kbit/s tbf run..." >&2
run_link tbf "$box_ip" "$box_ip" yes no ip netns exec "$ns"
echo "bench-state: MQTT bridged over the 256 kbit/s link (${measure_s}s)..." >&2
run_bridge

python3 - "$work" "$latency_source" "$link_bytes_per_s" "$measure_s" "$edges" <<'EOF'
import json, sys

work, source, link, measure_s, edges = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]

def load(name):
    with open(f"{work}/{name}") as f:
        return json.loads(f.read().strip().splitlines()[-1])

def site_summary(run):
    with open(f"{work}/{run}/site.jsonl") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    return next(l for l in lines if l["kind"] == "summary")

results = {}
for run in ("loopback", "tbf"):
    results[run] = {"client": load(f"{run}/client.json"), "site": site_summary(run),
                    "latency": load(f"{run}/latency.json")}

c = results["loopback"]["client"]
s = results["loopback"]["site"]
changes = c["binary_changes"] + c["scalar_changes"]
edgenvr_per_change = c["bytes"] / changes
edgenvr_per_binary = (c["bytes"] - c["scalar_change_bytes"]) / c["binary_changes"]
edgenvr_rate = c["bytes"] / c["seconds"]
site_changes = s["binary_changes"] + s["scalar_reports"]
# The broker's counters over the loopback counting window: first and last sample inside it.
with open(f"{work}/loopback/window-start") as f0, open(f"{work}/loopback/window-end") as f1:
    w0, w1 = float(f0.read()), float(f1.read())
samples = {}
with open(f"{work}/mqtt-sys.txt") as f:
    for line in f:
        parts = line.split()
        if len(parts) == 3 and w0 <= float(parts[0]) <= w1:
            samples.setdefault(parts[1], []).append((float(parts[0]), int(parts[2])))
bytes_s = samples.get("$SYS/broker/bytes/received", [])
pubs_s = samples.get("$SYS/broker/publish/messages/received", [])
mqtt_per_publish = mqtt_rate = None
if len(bytes_s) >= 2 and len(pubs_s) >= 2:
    mqtt_per_publish = (bytes_s[-1][1] - bytes_s[0][1]) / (pubs_s[-1][1] - pubs_s[0][1])
    mqtt_rate = (bytes_s[-1][1] - bytes_s[0][1]) / (bytes_s[-1][0] - bytes_s[0][0])
results["mqtt_broker"] = {"bytes": bytes_s[:1] + bytes_s[-1:], "publishes": pubs_s[:1] + pubs_s[-1:],
                          "sent": s["mqtt_sent"], "refused": s["mqtt_refused"]}
rows = [
    ("edgenvr frames over TCP (measured)", edgenvr_per_change, edgenvr_rate),
    ("HA MQTT, ON/OFF payload", s["mqtt_plain_bytes"] / site_changes, s["mqtt_plain_bytes"] / s["seconds"]),
    ("HA MQTT, JSON payload", s["mqtt_json_bytes"] / site_changes, s["mqtt_json_bytes"] / s["seconds"]),
    ("edgenvr's Home Assistant state topics (home_assistant = true, formula)", s["ha_state_bytes"] / site_changes, s["ha_state_bytes"] / s["seconds"]),
    ("HA MQTT, ON/OFF payload, through mosquitto (broker's $SYS counters)", mqtt_per_publish, mqtt_rate),
    ("XML polled at 1 Hz", None, s["xml_bytes"] / max(1, s["xml_documents"])),
]
print(f"site: {c['sensors']} sensors; {c['binary_changes'] / c['seconds']:.0f} binary + "
      f"{c['scalar_changes'] / c['seconds']:.1f} scalar changes/s on the wire over {c['seconds']:.0f} s "
      f"(catalog + snapshot {c['session_start_bytes']} B first)")
print()
print(f"| format | bytes per change | bytes/s | fits in 256 kbit/s ({link} B/s)? |")
print("| --- | --- | --- | --- |")
for name, per, rate in rows:
    if rate is None:
        print(f"| {name} | not measured (no $SYS samples) | | |")
        continue
    per_text = "whole site every second" if per is None else f"{per:.2f}"
    print(f"| {name} | {per_text} | {rate:,.0f} | {'yes' if rate <= link else 'no'} ({100 * rate / link:.1f} %) |")
print()
print(f"edgenvr per binary change, frame overhead included (scalar changes' own key+value bytes "
      f"taken out): {edgenvr_per_binary:.2f} B")
t = results["tbf"]["client"]
tbf_rate = t["bytes"] / t["seconds"]
print(f"through the 256 kbit/s link: {tbf_rate:,.0f} B/s of frames, {t['binary_changes'] / t['seconds']:.0f} "
      f"binary changes/s, resyncs {t['resyncs']}, sequence gaps {t['seq_gaps']}, catalog + snapshot "
      f"{t['session_start_bytes']:,} B in {t['session_start_seconds']:.1f} s (a client without a cache)")
connects = {}
for run in ("cold", "warm"):
    with open(f"{work}/tbf/connect-{run}.json") as f:
        connects[run] = json.loads(f.read().strip().splitlines()[-1])
results["connect"] = connects
print()
print("`nvrctl watch` to a live, consistent view through the 256 kbit/s link, under the site's load:")
print("| catalog | live after s | catalog from the cache | resyncs in the next 20 s | lost links | changes followed |")
print("| --- | --- | --- | --- | --- | --- |")
for run, label in (("cold", "first connect (empty cache)"), ("warm", "reconnect (catalog known)")):
    r = connects[run]
    live = "never" if r["live_s"] is None else f"{r['live_s']:.2f}"
    print(f"| {label} | {live} | {r['from_cache']} | {r['resyncs_after_live']} | {r['lost_links']} | {r['changes_followed']} |")
with open(f"{work}/tbf/link-start") as f0, open(f"{work}/tbf/link-end") as f1:
    (t0, b0, p0, d0), (t1, b1, p1, d1) = (list(map(float, f.read().split())) for f in (f0, f1))
link_rate = (b1 - b0) / (t1 - t0)
results["tbf"]["link"] = {"seconds": t1 - t0, "bytes": b1 - b0, "packets": p1 - p0, "dropped": d1 - d0}
print(f"the link itself (tc qdisc counters, box → upstream, every connection, Ethernet/IP/TCP headers "
      f"included): {link_rate:,.0f} B/s in {(p1 - p0) / (t1 - t0):.1f} packets/s, {int(d1 - d0)} dropped "
      f"({100 * link_rate / link:.1f} % of the link)")
print()
what = ("real box: a control-socket `set` → sim PIR → `edgenvr run` state port → `nvrctl watch --json`"
        if source == "box" else
        "in-process edge on the load generator's bus (--trigger-stdin) → its state port → `nvrctl watch --json`")
print(f"latency ({what}), {edges} edges:")
print("| link | p50 ms | p99 ms | max ms | lost |")
print("| --- | --- | --- | --- | --- |")
quiet = None
if source == "box":
    with open(f"{work}/quiet/latency.json") as f:
        quiet = json.loads(f.read().strip().splitlines()[-1])
    with open(f"{work}/quiet/latency-sim.json") as f:
        quiet_sim = json.loads(f.read().strip().splitlines()[-1])
    results["quiet"] = {"latency": quiet, "latency_sim": quiet_sim}
    print(f"| loopback, idle box, nothing else running | {quiet['p50_ms']} | {quiet['p99_ms']} | {quiet['max_ms']} | {quiet['lost']} |")
    print(f"| the same, timed from `edgenvr sim set`'s start (version 1's method) | {quiet_sim['p50_ms']} | {quiet_sim['p99_ms']} | {quiet_sim['max_ms']} | {quiet_sim['lost']} |")
for run, label in (("loopback", "loopback, the site's load on the same machine"), ("tbf", "256 kbit/s tbf, with the site's load")):
    l = results[run]["latency"]
    print(f"| {label} | {l['p50_ms']} | {l['p99_ms']} | {l['max_ms']} | {l['lost']} |")
print()
# The bridge run: the link's bytes (box side, towards the office) over the site's changes.
with open(f"{work}/bridge/window-start") as f0, open(f"{work}/bridge/window-end") as f1:
    b0, b1 = float(f0.read()), float(f1.read())
with open(f"{work}/bridge/link-start") as f0, open(f"{work}/bridge/link-end") as f1:
    (l0, y0, k0, x0), (l1, y1, k1, x1) = (list(map(float, f.read().split())) for f in (f0, f1))
with open(f"{work}/bridge/site.jsonl") as f:
    seconds_rows = [json.loads(l) for l in f if l.strip()]
summary = next(r for r in seconds_rows if r["kind"] == "summary")
change_rate = (summary["binary_changes"] + summary["scalar_reports"]) / summary["seconds"]
bridge_rate = (y1 - y0) / (l1 - l0)
office_changes = 0
with open(f"{work}/bridge/office-watch.jsonl") as f:
    office_changes = sum(1 for l in f if '"event":"change"' in l)
results["bridge"] = {"link_bytes_per_s": bridge_rate, "packets_per_s": (k1 - k0) / (l1 - l0),
                     "dropped": x1 - x0, "site_changes_per_s": change_rate,
                     "office_changes_seen": office_changes}
print()
print(f"MQTT bridged to an office broker over the 256 kbit/s link: {bridge_rate:,.0f} B/s on the link "
      f"({100 * bridge_rate / link:.1f} %, {(k1 - k0) / (l1 - l0):.1f} packets/s, {int(x1 - x0)} dropped), "
      f"{change_rate:.0f} changes/s at the site: {bridge_rate / change_rate:.2f} B per change on the link, "
      f"headers included; the office's nvrctl watch --mqtt printed {office_changes} changes")
p99 = results["tbf"]["latency"]["p99_ms"]
met_bytes = edgenvr_per_binary <= 4.0
met_link = link_rate <= link and t["resyncs"] == 0 and p99 is not None and p99 < 1000
print(f"target ≤ 4 bytes per binary change amortised: {'MET' if met_bytes else 'NOT MET'} ({edgenvr_per_binary:.2f})")
print(f"target whole site within 256 kbit/s, p99 < 1 s: {'MET' if met_link else 'NOT MET'} "
      f"({link_rate:,.0f} B/s on the link, p99 {p99} ms)")
lp99 = (quiet or results["loopback"]["latency"])["p99_ms"]
print(f"target p99 PIR edge to nvrctl watch < 10 ms on loopback, idle box: "
      f"{'MET' if lp99 is not None and lp99 < 10 else 'NOT MET'} ({lp99} ms)")
cold, warm = connects["cold"], connects["warm"]
print(f"target first connect < 15 s through the link: "
      f"{'MET' if cold['live_s'] is not None and cold['live_s'] < 15 else 'NOT MET'} ({cold['live_s']} s)")
print(f"target reconnect with the catalog known < 2 s: "
      f"{'MET' if warm['live_s'] is not None and warm['live_s'] < 2 and warm['from_cache'] else 'NOT MET'} ({warm['live_s']} s)")
print(f"target no forced resync: {'MET' if cold['resyncs_after_live'] == 0 and warm['resyncs_after_live'] == 0 and t['resyncs'] == 0 else 'NOT MET'}")
print()
print("raw:", json.dumps(results))
EOF
