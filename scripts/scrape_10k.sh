#!/usr/bin/env bash
# scrape_10k.sh: issue 12's scrape measurement (docs/benchmarks.md, "Metrics
# (issue 12)"). Needs release examples in $TARGET/release (TARGET: default
# target), taskset, python3 and curl; CONNS [10000] idle connections by
# loadgen --depth 0. Only the processes it starts are signalled.
# 10 000 idle connections on echo_server --metrics; 200 scrapes at 10 Hz;
# turn-duration histogram delta over the scrape window, and round trips.
set -euo pipefail
T=${TARGET:-target}/release/examples
ulimit -n 20000
taskset -c 0 $T/echo_server --addr 127.0.0.1:0 --metrics 127.0.0.1:0 2> server.log &
SPID=$!
trap 'kill $SPID 2>/dev/null || true; [[ -n ${LPID:-} ]] && kill $LPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "^metrics on" server.log && break; sleep 0.1; done
ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' server.log); M=$(sed -n 's/^metrics on //p' server.log)
taskset -c 1 $T/loadgen --addr $ADDR --connections ${CONNS:-10000} --depth 0 --warmup 0 --duration 60 > loadgen.out 2>&1 &
LPID=$!
for _ in $(seq 300); do c=$(curl -s http://$M/metrics | sed -n 's/^reactor_connections //p'); [[ $c == ${CONNS:-10000} ]] && break; sleep 0.1; done
echo "connections: $c"
sleep 1
curl -s http://$M/metrics > before.txt
taskset -c 1 python3 - $M > curl_times.txt <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(':', 1)
for _ in range(200):
    t = time.perf_counter()
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    n = 0
    while True:
        b = s.recv(65536)
        if not b: break
        n += len(b)
    s.close()
    print(time.perf_counter() - t)
    time.sleep(0.1)
PY
curl -s http://$M/metrics > after.txt
python3 - <<'PY'
def parse(f):
    d={}
    for l in open(f):
        if l.startswith('#') or not l.strip(): continue
        k,v=l.rsplit(' ',1); d[k]=float(v)
    return d
a,b=parse('before.txt'),parse('after.txt')
print("reactor_connections", b['reactor_connections'], "size of exposition bytes", len(open('after.txt').read()))
for h in ['reactor_turn_duration_seconds','reactor_timer_lag_seconds']:
    n=b[h+'_count']-a[h+'_count']; s=b[h+'_sum']-a[h+'_sum']
    print(h, "turns in window", n, "mean us", (s/n*1e6 if n else 0))
    for k in sorted([k for k in b if k.startswith(h+'_bucket')], key=lambda k: float(k.split('"')[1].replace('+Inf','inf'))):
        d=b[k]-a[k]
        print("  ", k.split('"')[1], int(d))
print("busy s in window", b['reactor_loop_busy_seconds_total']-a['reactor_loop_busy_seconds_total'], "turns", b['reactor_turns_total']-a['reactor_turns_total'])
t=sorted(float(x) for x in open('curl_times.txt'))
print("scrape round trip ms: median %.3f p99 %.3f max %.3f"%(t[len(t)//2]*1e3, t[int(len(t)*.99)]*1e3, t[-1]*1e3))
PY
