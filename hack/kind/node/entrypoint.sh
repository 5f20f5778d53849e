#!/bin/bash
# PID 1 of a kind node container until it execs systemd (the image's CMD). kind runs the container
# --privileged --cgroupns=private with /var as a volume and /run, /tmp as tmpfs.
set -o errexit -o nounset -o pipefail

log() { echo "INFO: $*"; }

# Volume mounts the kubelet makes for pods (and containerd's own) must propagate between the node's
# mount namespace and the pods'; docker leaves / private.
mount --make-rshared /

# A node container starts from the same image as its siblings: give it its own machine id, or
# systemd's and the kubelet's view of "this machine" is shared by every node.
if [ ! -s /etc/machine-id ] || [ "$(cat /etc/machine-id)" = uninitialized ]; then
  rm -f /etc/machine-id
  systemd-machine-id-setup >/dev/null
fi

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  log "detected cgroup v2"
else
  # kind waits for this line (or systemd's "Reached target ... Multi-User System") on cgroup v1.
  log "detected cgroup v1"
  # kind's kubelet configuration sets cgroupRoot /kubelet (kubelet.slice under the systemd driver)
  # and the kubelet refuses to start unless that cgroup exists in every hierarchy it uses.
  for hierarchy in /sys/fs/cgroup/*/; do
    case "$hierarchy" in */unified/) continue ;; esac
    mkdir -p "${hierarchy}kubelet" "${hierarchy}kubelet.slice"
  done
fi

# Pods on this node talk through its bridge: kube-proxy's rules see bridged traffic only with bridge
# netfilter on, and forwarding is per network namespace. Both are this container's own settings.
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
echo 1 > /proc/sys/net/ipv4/ip_forward

# Docker's resolver answers at 127.0.0.11, which only means something in this network namespace: in
# a pod (CoreDNS forwards to the node's resolv.conf) it is the pod itself, and CoreDNS stops on the
# loop. Serve it at the docker network's gateway address instead, for the node and for its pods:
# DNAT that address's port 53 to the ports docker's resolver really listens on.
gateway=$(ip -4 route show default | awk '{print $3; exit}')
for save in iptables-nft-save iptables-legacy-save; do
  rules=$("$save" -t nat 2>/dev/null | grep -E '^-A DOCKER_OUTPUT .*--to-destination 127\.0\.0\.11:' || true)
  [ -n "$rules" ] && break
done
if [ -n "$gateway" ] && [ -n "$rules" ]; then
  iptables=${save%-save}
  echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
  while read -r rule; do
    proto=$(sed -E 's/.* -p ([a-z]+) .*/\1/' <<<"$rule")
    target=$(sed -E 's/.*--to-destination ([0-9.:]+).*/\1/' <<<"$rule")
    for chain in PREROUTING OUTPUT; do
      "$iptables" -t nat -A "$chain" -d "$gateway/32" -p "$proto" --dport 53 -j DNAT --to-destination "$target"
    done
  done <<<"$rules"
  sed -e "s/^nameserver 127\.0\.0\.11$/nameserver $gateway/" /etc/resolv.conf > /etc/resolv.conf.node
  cat /etc/resolv.conf.node > /etc/resolv.conf
  rm -f /etc/resolv.conf.node
  log "docker's resolver served at $gateway:53"
fi

exec "$@"
