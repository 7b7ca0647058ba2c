//! The package, installed and used in the VM of `cargo xtask test --kernel` (its writes
//! stay in guest RAM, so `dpkg -i` never touches the host): install, attach from
//! /etc/handshake/handshake.toml to a veth in a namespace of the test's own, `status`,
//! `dpkg -r`, and nothing left behind. Reported like a test binary.

use std::path::Path;

/// The guest's shell script. `version` is what the packaged binary's `--version` prints.
pub fn script(deb: &Path, version: &str) -> String {
    format!(
        r#"#!/bin/sh
# Written by `cargo xtask test --kernel` (xtask/src/package_vm.rs); runs as root in the VM.
set -u
fail() {{ echo "test package_install ... FAILED: $*"; echo "test result: FAILED. 0 passed; 1 failed"; exit 1; }}
ns=hs-pkg
in_ns() {{ nsenter --net=/run/netns/$ns "$@"; }}

ip netns add $ns || fail "ip netns add $ns"
ip -n $ns link add hs-pkg type veth peer name hs-pkg-p || fail "adding the veth pair"
ip -n $ns addr add 198.18.0.1/24 dev hs-pkg
ip -n $ns link set hs-pkg up && ip -n $ns link set hs-pkg-p up || fail "setting the veth up"

DEBIAN_FRONTEND=noninteractive dpkg -i '{deb}' || fail "dpkg -i"
[ "$(handshake --version)" = '{version}' ] || fail "--version printed $(handshake --version)"
[ -f /usr/share/man/man8/handshake-attach.8.gz ] || fail "no man page handshake-attach(8)"
cat > /etc/handshake/handshake.toml <<'EOF'
[[interface]]
name = "hs-pkg"
ports = [8080]
xdp_mode = "generic"
EOF
in_ns /usr/sbin/handshake attach --config /etc/handshake/handshake.toml || fail "attach --config"
status=$(in_ns handshake status) || fail "status"
echo "$status"
case "$status" in
  "hs-pkg: generic XDP, ports 8080, program id "*" tag "*", attached "*) ;;
  *) fail "status printed: $status" ;;
esac
case "$status" in *"OTHER BUILD"*) fail "status names another build: $status" ;; esac
ip -n $ns link show hs-pkg | grep -q xdp || fail "no XDP program on hs-pkg after attach"

# The package's prerm detaches what is attached in the namespace dpkg runs in.
in_ns dpkg -r handshake || fail "dpkg -r"
[ ! -e /usr/sbin/handshake ] || fail "/usr/sbin/handshake is still there"
ip -n $ns link show hs-pkg | grep -q xdp && fail "an XDP program is still on hs-pkg"
left=$(find /sys/fs/bpf/handshake -mindepth 1 2>/dev/null)
[ -z "$left" ] || fail "pins left behind: $left"
ip netns del $ns
echo "test package_install ... ok"
echo "test result: ok. 1 passed; 0 failed"
"#,
        deb = deb.display(),
    )
}
