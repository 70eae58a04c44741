#!/usr/bin/env bash
# corecast host tuning for bare-metal operators (root). Idempotent.
#   usage: tuning/apply.sh [--router-cpus 2,3] [--persist]
# --router-cpus: keep NIC interrupts off these CPUs (the router workers' cores)
# --persist:     also write /etc/sysctl.d/60-corecast.conf and /etc/security/limits.d/60-corecast.conf
set -euo pipefail
router_cpus=""; persist=0
while [ $# -gt 0 ]; do
  case "$1" in
    --router-cpus) router_cpus="$2"; shift 2 ;;
    --persist) persist=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

settings=(
  "net.core.rmem_max=67108864"
  "net.core.wmem_max=67108864"
  "net.core.rmem_default=4194304"
  "net.core.wmem_default=4194304"
  "net.core.netdev_max_backlog=30000"
  "net.core.optmem_max=131072"
  "net.ipv4.udp_mem=4096 1048576 8388608"
)
for s in "${settings[@]}"; do sysctl -q -w "$s" && echo "set $s"; done
if [ $persist -eq 1 ]; then
  printf '%s\n' "# corecast router tuning" "${settings[@]}" | sed 's/=/ = /' > /etc/sysctl.d/60-corecast.conf
  printf '%s\n' "# corecast: io_uring rings and registered buffers" "* soft memlock unlimited" "* hard memlock unlimited" \
    > /etc/security/limits.d/60-corecast.conf
  echo "persisted to /etc/sysctl.d/60-corecast.conf and /etc/security/limits.d/60-corecast.conf"
fi
gov=/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor
if [ -w "$gov" ]; then
  for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do echo performance > "$g"; done
  echo "cpufreq governor: performance"
fi
if [ -n "$router_cpus" ]; then
  # Interrupts go to every CPU except the router's.
  all=$(seq -s, 0 $(( $(nproc) - 1 )))
  others=$(comm -23 <(tr , '\n' <<<"$all" | sort) <(tr , '\n' <<<"$router_cpus" | sort) | sort -n | paste -sd,)
  [ -n "$others" ] || { echo "no CPU left for interrupts" >&2; exit 1; }
  for irq in /proc/irq/[0-9]*; do
    echo "$others" > "$irq/smp_affinity_list" 2>/dev/null || true
  done
  echo "IRQs moved to CPUs $others (router on $router_cpus); stop irqbalance or ban those CPUs in it"
fi
