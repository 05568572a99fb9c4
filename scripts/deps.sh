#!/usr/bin/env bash
# Installs what building and testing knockd-rs need, only what is missing.
#
#   scripts/deps.sh build   libpcap-dev (and a C linker), plus rustfmt/clippy
#   scripts/deps.sh test    the above, plus what the root-only tests drive:
#                           knockd (the C reference), iptables, nftables,
#                           iproute2, tcpdump, tcpreplay, hping3
#   scripts/deps.sh deb     build's, plus what `make deb`/`make deb-check`
#                           need: cargo-deb (cargo install, pinned), dpkg-dev
#                           (dpkg-shlibdeps for the package's Depends) and
#                           groff-base (rendering the man pages)
#
# As root on Debian/Ubuntu it installs missing packages with apt-get
# (non-interactive, so CI with no stdin works). Otherwise it prints the exact
# command to run: missing build packages stop here, missing test-only
# packages do not (the tests that need them only run as root).
set -euo pipefail

what=${1:-build}
case "$what" in
    build | test | deb) ;;
    *)
        echo "usage: $0 [build|test|deb]" >&2
        exit 64
        ;;
esac

build_pkgs=(libpcap-dev)
test_pkgs=(knockd iptables nftables ipset iproute2 tcpdump tcpreplay hping3)
deb_pkgs=(dpkg-dev groff-base)
# Pinned so a package build does not change with a cargo-deb release; bump
# on purpose. Installing it takes about a minute, so only `make deb` pays.
cargo_deb_version=3.8.0
command -v cc >/dev/null 2>&1 || build_pkgs+=(gcc libc6-dev)

is_root() { [ "$(id -u)" -eq 0 ]; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing_of() {
    local p
    for p in "$@"; do
        installed "$p" || printf '%s\n' "$p"
    done
}

# As root directly; otherwise through sudo when there is one (it may ask
# for a password).
as_root() {
    if is_root; then "$@"; else sudo "$@"; fi
}

apt_install() {
    echo "deps: installing $*" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

if command -v dpkg-query >/dev/null 2>&1; then
    mapfile -t missing_build < <(missing_of "${build_pkgs[@]}")
    missing_test=()
    if [ "$what" = test ]; then
        mapfile -t missing_test < <(missing_of "${test_pkgs[@]}")
    elif [ "$what" = deb ]; then
        # Like the test packages: a non-root `make deb` is told, not stopped
        # (the build itself needs only libpcap-dev and cargo-deb).
        mapfile -t missing_test < <(missing_of "${deb_pkgs[@]}")
    fi
    all=("${missing_build[@]}" "${missing_test[@]}")
    if [ "${#all[@]}" -gt 0 ]; then
        if command -v apt-get >/dev/null 2>&1 && { is_root || command -v sudo >/dev/null 2>&1; }; then
            apt_install "${all[@]}"
        elif [ "${#missing_build[@]}" -gt 0 ]; then
            echo "deps: missing ${missing_build[*]}; install with:" >&2
            echo "    sudo apt-get install -y ${all[*]}" >&2
            exit 1
        else
            echo "deps: note: ${missing_test[*]} missing; make $what needs them:" >&2
            echo "    sudo apt-get install -y ${missing_test[*]}" >&2
        fi
    fi
else
    echo "deps: not a dpkg system; make sure libpcap (with headers) is installed" >&2
fi

# Toolchain components used by `make test`.
components=()
cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
if [ "${#components[@]}" -gt 0 ]; then
    if command -v rustup >/dev/null 2>&1; then
        echo "deps: adding rust components ${components[*]}" >&2
        rustup component add "${components[@]}"
    else
        echo "deps: missing cargo ${components[*]} and no rustup to add them" >&2
        exit 1
    fi
fi

# cargo-deb, for `make deb`. Built outside CARGO_TARGET_DIR (cargo install's
# own temporary directory) so its artifacts never mix with the project's.
if [ "$what" = deb ]; then
    have=$(cargo deb --version 2>/dev/null || true)
    if [ "$have" != "cargo-deb $cargo_deb_version" ]; then
        echo "deps: installing cargo-deb $cargo_deb_version (was: ${have:-none})" >&2
        env -u CARGO_TARGET_DIR cargo install cargo-deb --locked --version "$cargo_deb_version"
    fi
fi
