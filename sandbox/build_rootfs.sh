#!/bin/sh
# Build the sandbox's base root filesystem offline: a minimal Debian bookworm with python3 only.
#
# Why: no container registry is reachable on some machines (this one included), but a Debian
# mirror usually is. The result is a tarball that `docker import` turns into the base image the
# Dockerfile builds FROM (see phi_eval/sandbox/image.py). Debian bookworm's python3 is 3.11.
#
# usage: build_rootfs.sh OUT.tar [MIRROR]
set -eu

OUT=${1:?usage: build_rootfs.sh OUT.tar [MIRROR]}
MIRROR=${2:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3-minimal,libpython3.11-stdlib

command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/phi-eval-rootfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT="$WORK/root"

debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log" >&2
    exit 1
}

# Nothing the sandbox needs: package caches and lists, docs, man pages, locales, logs.
rm -rf "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/tmp/* "$ROOT"/debootstrap

# Names for the runner's default uids (sandbox/runner/common.py DEFAULT_UIDS, used only when it is
# started without --uids): 10001 is the trusted test process, 10002 the untrusted candidate. The
# host always passes --uids (a range of its own per container, phi_eval/sandbox/uids.py
# sandbox_uids: the test process's uid first, then one candidate uid per sample), and those uids
# need no name: nothing in the sandbox looks a user up. No shell, no home.
chroot "$ROOT" /usr/sbin/groupadd -g 10001 tester
chroot "$ROOT" /usr/sbin/useradd -u 10001 -g 10001 -M -d /nonexistent -s /usr/sbin/nologin tester
chroot "$ROOT" /usr/sbin/groupadd -g 10002 candidate
chroot "$ROOT" /usr/sbin/useradd -u 10002 -g 10002 -M -d /nonexistent -s /usr/sbin/nologin candidate
chroot "$ROOT" /usr/bin/python3 -c 'import json, os, resource, signal, sys; assert sys.version_info[:2] == (3, 11)'

mkdir -p "$(dirname "$OUT")"
tar --numeric-owner -C "$ROOT" -cf "$OUT.$$.part" .
mv "$OUT.$$.part" "$OUT"  # atomic: a concurrent build never sees half a tarball
