#!/usr/bin/env bash
# Checks a built knockd-rs .deb without installing it on this machine (the
# host keeps Debian's knockd 0.8 as the test reference): lists it, reads its
# control fields, extracts it into a temporary directory and runs what it
# ships from there.
#
#   scripts/deb-check.sh target/debian/knockd-rs_*.deb     (make deb-check)
#
# Prints one line per check and ends with "deb-check: N passed, M failed";
# exits 1 if any failed. A check whose tool is missing here (systemd-analyze
# outside a systemd system, logrotate, zsh) is reported as skipped with the
# reason, never silently passed.
set -euo pipefail

deb=${1:?usage: $0 PACKAGE.deb}
[ -f "$deb" ] || { echo "deb-check: $deb: no such file" >&2; exit 66; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "ok:   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }
section() { printf '\n== %s\n' "$*"; }

section "dpkg-deb -c $deb"
listing=$(dpkg-deb -c "$deb")
echo "$listing"
section "dpkg-deb -I $deb"
dpkg-deb -I "$deb"
dpkg-deb -x "$deb" "$root"
section checks

# --- contents -------------------------------------------------------------
# mode of a path in the listing ("./etc/knockd.conf" -> "-rw-------"), or "".
mode_of() { awk -v p="./$1" '$NF == p { print $1 }' <<<"$listing"; }
owner_of() { awk -v p="./$1" '$NF == p { print $2 }' <<<"$listing"; }
expect_file() { # path mode
    local m
    m=$(mode_of "$1")
    if [ -z "$m" ]; then
        fail "$1 missing"
    elif [ "$m" != "$2" ]; then
        fail "$1 has mode $m, want $2"
    elif [ "$(owner_of "$1")" != "0/0" ]; then
        fail "$1 owned by $(owner_of "$1"), want root (0/0)"
    else
        pass "$1 $m root"
    fi
}
expect_file usr/sbin/knockd -rwxr-xr-x
# Debian's path, not /usr/lib: see the comment in Cargo.toml's assets.
expect_file lib/systemd/system/knockd.service -rw-r--r--
expect_file etc/default/knockd -rw-r--r--
expect_file etc/knockd.conf -rw-------
expect_file etc/logrotate.d/knockd -rw-r--r--
expect_file usr/share/man/man8/knockd.8.gz -rw-r--r--
expect_file usr/share/man/man5/knockd.conf.5.gz -rw-r--r--
expect_file usr/share/bash-completion/completions/knockd -rw-r--r--
expect_file usr/share/zsh/vendor-completions/_knockd -rw-r--r--
expect_file usr/share/doc/knockd-rs/copyright -rw-r--r--

# Every [[bin]] of the crate is packaged where Debian's knockd had it, so a
# new binary (the knock client) cannot be forgotten in the asset list.
mapfile -t bins < <(awk '/^\[\[bin\]\]/ { inbin = 1; next } /^\[/ { inbin = 0 }
    inbin && $1 == "name" { gsub(/[" ]/, "", $3); print $3 }' Cargo.toml)
for b in "${bins[@]}"; do
    case "$b" in
        knockd) dir=usr/sbin ;;
        *) dir=usr/bin ;;
    esac
    if [ -n "$(mode_of "$dir/$b")" ]; then
        pass "[[bin]] $b packaged as /$dir/$b"
    else
        fail "[[bin]] $b is not in the package: uncomment its lines in Cargo.toml's [package.metadata.deb] assets"
    fi
done

# --- control fields ---------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
for f in Conflicts Replaces Provides; do
    if [ "$(field "$f")" = knockd ]; then
        pass "$f: knockd"
    else
        fail "$f is '$(field "$f")', want knockd"
    fi
done
if [[ "$(field Depends)" == *libpcap0.8* ]]; then
    pass "Depends: $(field Depends)"
else
    fail "Depends '$(field Depends)' lacks libpcap0.8"
fi
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)
for c in /etc/knockd.conf /etc/default/knockd /etc/logrotate.d/knockd; do
    if grep -qx "$c" <<<"$conffiles"; then pass "conffile $c"; else fail "$c is not a conffile"; fi
done

# --- maintainer scripts -----------------------------------------------------
ctrl=$root/.control
mkdir "$ctrl"
dpkg-deb -e "$deb" "$ctrl"
for s in postinst prerm postrm; do
    if [ ! -x "$ctrl/$s" ]; then
        fail "$s missing or not executable"
    elif sh -n "$ctrl/$s"; then
        pass "$s parses (sh -n)"
    else
        fail "$s: sh -n"
    fi
done

# --- the shipped binary and config --------------------------------------------
# The package's own /etc/knockd.conf, checked by the package's own knockd:
# exit 0 and not a single warning (a warning would mean a wrong mode too).
if out=$("$root/usr/sbin/knockd" --check -c "$root/etc/knockd.conf" 2>"$root/.err"); then
    if [ -s "$root/.err" ]; then
        fail "knockd --check on the shipped knockd.conf warns: $(cat "$root/.err")"
    else
        pass "knockd --check -c etc/knockd.conf: $(tail -1 <<<"$out")"
    fi
else
    fail "knockd --check -c etc/knockd.conf exited $?: $(cat "$root/.err")"
fi
sample=$root/usr/share/doc/knockd-rs/examples/knockd.conf.sample
chmod 600 "$sample" # installed 0644 as documentation; --check would warn
if "$root/usr/sbin/knockd" --check -c "$sample" >/dev/null; then
    pass "knockd --check on the shipped knockd.conf.sample"
else
    fail "knockd --check on the shipped knockd.conf.sample"
fi
# Every example config the repository has is in the package.
missing_examples=
for ex in examples/*.conf examples/*.nft examples/*.md examples/gen-one-time-sequences.sh; do
    [ -f "$root/usr/share/doc/knockd-rs/examples/$(basename "$ex")" ] || missing_examples="$missing_examples $ex"
done
if [ -z "$missing_examples" ]; then
    pass "every example is in usr/share/doc/knockd-rs/examples/"
else
    fail "examples not packaged:$missing_examples"
fi
if [ "$("$root/usr/sbin/knockd" -V)" = "knockd $(field Version | sed 's/-[^-]*$//')" ]; then
    pass "knockd -V matches the package version"
else
    fail "knockd -V is '$("$root/usr/sbin/knockd" -V)', package $(field Version)"
fi

# --- systemd unit -----------------------------------------------------------
unit=$root/lib/systemd/system/knockd.service
for line in 'EnvironmentFile=-/etc/default/knockd' 'ExecStart=/usr/sbin/knockd $KNOCKD_OPTS' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'KillMode=mixed' 'Type=notify' 'StateDirectory=knockd'; do
    if grep -qxF "$line" "$unit"; then pass "unit: $line"; else fail "unit lacks $line"; fi
done
if ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd-analyze verify: systemd-analyze not installed (package systemd)"
else
    # verify checks that ExecStart's binary exists: point it at the extracted
    # one (the host's /usr/sbin/knockd is Debian's, or absent). The man pages
    # named in Documentation= are looked up in the package through MANPATH.
    # --root cannot be used: it wants a whole system (sysinit.target, /bin/kill).
    mkdir "$root/.unit"
    sed "s|^ExecStart=/usr/sbin/knockd|ExecStart=$root/usr/sbin/knockd|" "$unit" >"$root/.unit/knockd.service"
    if out=$(cd "$root/.unit" && MANPATH=$root/usr/share/man systemd-analyze verify knockd.service 2>&1) && [ -z "$out" ]; then
        pass "systemd-analyze verify knockd.service (incl. man:knockd(8), man:knockd.conf(5))"
    else
        fail "systemd-analyze verify: ${out:-non-zero exit}"
    fi
    exposure=$(systemd-analyze security --offline=yes "$root/.unit/knockd.service" 2>/dev/null | grep -o 'Overall exposure level.*' || true)
    echo "      ($exposure; Debian's knockd.service: 7.4 MEDIUM)"
fi

# --- logrotate ---------------------------------------------------------------
if ! command -v logrotate >/dev/null 2>&1; then
    skip "logrotate -d: logrotate not installed"
elif out=$(logrotate -d -s "$root/.logrotate.state" "$root/etc/logrotate.d/knockd" 2>&1) &&
    ! grep -qi 'error' <<<"$out"; then
    pass "logrotate -d etc/logrotate.d/knockd"
else
    fail "logrotate -d: $out"
fi

# --- completions -------------------------------------------------------------
if bash -n "$root/usr/share/bash-completion/completions/knockd"; then
    pass "bash completion parses"
else
    fail "bash completion: bash -n"
fi
if command -v zsh >/dev/null 2>&1; then
    if zsh -n "$root/usr/share/zsh/vendor-completions/_knockd"; then pass "zsh completion parses"; else fail "zsh completion: zsh -n"; fi
else
    skip "zsh -n: zsh not installed"
fi

# --- man pages ---------------------------------------------------------------
# groff -ww: all warnings; any output on stderr is a failure.
for page in man8/knockd.8.gz man5/knockd.conf.5.gz; do
    src=$root/usr/share/man/$page
    if ! command -v groff >/dev/null 2>&1; then
        skip "$page: groff not installed (package groff-base)"
        continue
    fi
    if warn=$(zcat "$src" | LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z 2>&1) && [ -z "$warn" ]; then
        pass "$page renders without warnings"
    else
        fail "$page: groff: $warn"
    fi
    section "$page (first lines)"
    if command -v man >/dev/null 2>&1; then
        LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$src" 2>/dev/null | head -15 || true
    else
        zcat "$src" | LC_ALL=C.UTF-8 groff -man -Tutf8 -P-cbou 2>/dev/null | head -15 || true
    fi
done

echo
echo "deb-check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
