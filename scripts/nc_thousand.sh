#!/usr/bin/env bash
# Drives an echo server with N concurrent OpenBSD netcat clients (a client
# this project did not write) and checks every echoed byte with cmp.
#
#   scripts/nc_thousand.sh [HOST] [PORT] [CLIENTS] [BYTES] [MAX_WAIT_SECONDS]
#
# Each client sends its own random file, then keeps its connection open by
# waiting on a shared FIFO gate. Once ss shows every client established at the
# same time (or MAX_WAIT_SECONDS passed), the gate closes; each client then
# shuts down its write side (nc -N), the server echoes the rest and closes.
# Prints the peak of concurrently established connections seen by ss, and
# exits non-zero if any echo differs from what was sent or if the clients
# were never all connected at once.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-65432}
clients=${3:-1000}
bytes=${4:-65536}
max_wait=${5:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for i in $(seq 1 "$clients"); do
  head -c "$bytes" /dev/urandom > "$work/in.$i"
done

peak=0
sample() {
  ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l
}

mkfifo "$work/gate"
# Held open read-write by this script: readers block on it without EOF
# until it is closed below.
exec 3<>"$work/gate"

start=$(date +%s.%N)
for i in $(seq 1 "$clients"); do
  ( exec 3>&-; { cat "$work/in.$i"; cat "$work/gate"; } | timeout $((max_wait + 60)) nc -N "$host" "$port" > "$work/out.$i" 2>"$work/err.$i"; echo $? > "$work/rc.$i" ) &
done
deadline=$(( $(date +%s) + max_wait ))
while (( $(date +%s) < deadline )); do
  n=$(sample)
  (( n > peak )) && peak=$n
  (( peak >= clients )) && break
  sleep 0.2
done
exec 3>&-
wait
end=$(date +%s.%N)

bad=0
for i in $(seq 1 "$clients"); do
  if [[ $(cat "$work/rc.$i") != 0 ]] || ! cmp -s "$work/in.$i" "$work/out.$i"; then
    bad=$((bad + 1))
    if (( bad <= 5 )); then
      echo "client $i: rc=$(cat "$work/rc.$i") sent $(stat -c %s "$work/in.$i") got $(stat -c %s "$work/out.$i") $(head -c 200 "$work/err.$i")"
    fi
  fi
done
total=$((clients * bytes))
printf 'clients=%d bytes_each=%d total_bytes=%d peak_established=%d bad=%d elapsed=%.1fs\n' \
  "$clients" "$bytes" "$total" "$peak" "$bad" "$(echo "$end - $start" | bc)"
(( bad == 0 && peak >= clients ))
