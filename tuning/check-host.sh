#!/usr/bin/env bash
# corecast host check: reports what limits the router's packet rate on this
# host and what to change. Read-only; exits 1 when something is below the
# recommended value (so it can gate a deploy), 0 otherwise.
#   usage: tuning/check-host.sh [--router-cpus 2,3]
set -uo pipefail

router_cpus=""
[ "${1:-}" = "--router-cpus" ] && router_cpus="${2:-}"
bad=0
ok()   { printf '  ok    %-34s %s\n' "$1" "$2"; }
warn() { printf '  WARN  %-34s %s\n' "$1" "$2"; bad=1; }
info() { printf '  info  %-34s %s\n' "$1" "$2"; }
sysctl_at_least() { # name minimum why
  local v; v=$(sysctl -n "$1" 2>/dev/null || echo 0)
  if [ "${v%% *}" -ge "$2" ] 2>/dev/null; then ok "$1" "$v"; else warn "$1" "$v (want >= $2: $3)"; fi
}

echo "corecast host check ($(uname -r), $(nproc) CPUs)"
echo "sockets"
sysctl_at_least net.core.rmem_max 33554432 "large UDP receive buffers absorb bursts"
sysctl_at_least net.core.wmem_max 33554432 "large send buffers for fan-out bursts"
sysctl_at_least net.core.netdev_max_backlog 30000 "backlog per CPU under packet floods"
sysctl_at_least net.core.optmem_max 81920 "cmsg space for GSO/GRO"
echo "memory"
memlock=$(ulimit -l)
if [ "$memlock" = "unlimited" ] || [ "$memlock" -ge 65536 ] 2>/dev/null; then ok "ulimit -l (memlock KiB)" "$memlock"
else warn "ulimit -l (memlock KiB)" "$memlock (want >= 65536 or unlimited: io_uring rings and registered buffers)"; fi
echo "io_uring"
d=$(sysctl -n kernel.io_uring_disabled 2>/dev/null || echo absent)
case "$d" in 0|absent) ok kernel.io_uring_disabled "$d" ;; *) warn kernel.io_uring_disabled "$d (router falls back to mmsg)" ;; esac
echo "CPUs"
gov=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)
case "$gov" in performance|n/a) ok "cpufreq governor" "$gov" ;; *) warn "cpufreq governor" "$gov (want performance)" ;; esac
iso=$(cat /sys/devices/system/cpu/isolated 2>/dev/null)
if [ -n "$iso" ]; then ok "isolated CPUs" "$iso"; else info "isolated CPUs" "none (isolcpus/nohz_full for router cores on dedicated hosts)"; fi
nodes=$(ls -d /sys/devices/system/node/node* 2>/dev/null | wc -l)
info "NUMA nodes" "$nodes (keep router workers on the NIC's node)"
echo "NICs"
for dev in /sys/class/net/*; do
  n=$(basename "$dev"); [ "$n" = lo ] && continue
  q=$(ls -d "$dev"/queues/rx-* 2>/dev/null | wc -l)
  feats=$(ethtool -k "$n" 2>/dev/null | grep -E '^(rx-udp-gro-forwarding|tx-udp-segmentation|generic-receive-offload):' | tr -s ' ' | tr '\n' ' ')
  info "$n" "rx queues $q ${feats:-(ethtool not installed)}"
  if [ -n "$router_cpus" ]; then
    for irq in $(grep -E "$n" /proc/interrupts | awk -F: '{print $1}'); do
      aff=$(cat /proc/irq/$irq/smp_affinity_list 2>/dev/null)
      case ",$router_cpus," in *",$aff,"*) warn "IRQ $irq ($n)" "on router CPU $aff (move it: tuning/apply.sh)";; esac
    done
  fi
done
echo "AF_XDP (router backend xdp; features from the kernel's netdev netlink family, kernel >= 6.3)"
xdp_feats=$(python3 "$(dirname "$0")/scripts/xdp-features.py" 2>/dev/null) || xdp_feats=""
for dev in /sys/class/net/*; do
  n=$(basename "$dev"); [ "$n" = lo ] && continue
  q=$(ls -d "$dev"/queues/rx-* 2>/dev/null | wc -l)
  drv=$(basename "$(readlink "$dev/device/driver" 2>/dev/null)" 2>/dev/null)
  [ -z "$drv" ] && drv=$(ip -d -o link show dev "$n" 2>/dev/null | grep -oE ' (veth|bridge|vlan|macvlan|ipvlan|ifb|tun|dummy|vxlan|bond|geneve|wireguard) ' | head -1 | tr -d ' ')
  line=$(printf '%s\n' "$xdp_feats" | awk -v n="$n" '$2 == n')
  if [ -z "$line" ]; then
    info "$n xdp" "driver ${drv:-?}, $q rx queue(s); XDP features unknown (no python3 or kernel < 6.3); the router would try native, then generic XDP, and zero-copy, then copy mode"
    continue
  fi
  set -- $line
  native=$([ "$3$4" = 11 ] && echo yes || echo no)
  zc=$([ "$6" = 1 ] && echo yes || echo no)
  if [ "$native" = yes ] && [ "$zc" = yes ]; then use="native XDP, zero-copy AF_XDP"
  elif [ "$native" = yes ]; then use="native XDP, copy mode"
  else use="generic XDP, copy mode (slower than mmsg+gso: keep mmsg)"; fi
  steer=""
  [ "$q" -gt 1 ] && steer="; one worker per queue, steer each worker's port to its queue (ethtool -N $n flow-type udp4 dst-port PORT action QUEUE)"
  info "$n xdp" "driver ${drv:-?}, native ${native}, generic yes, zero-copy ${zc}, $q rx queue(s): router would use ${use}${steer}"
done
[ $bad -eq 0 ] && echo "all checks passed" || echo "some checks want attention (tuning/apply.sh applies the fixes)"
exit $bad
