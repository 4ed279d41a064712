# Shared by the bench scripts: free ports, background servers stopped on exit.
# shellcheck shell=bash

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_pids=()
stop_servers() {
  for pid in "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap stop_servers EXIT

# start_server LOG CMD...: runs CMD in the background with output to LOG.
start_server() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  bench_pids+=("$!")
}

machine_summary() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
}
