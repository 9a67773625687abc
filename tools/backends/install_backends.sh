#!/usr/bin/env bash
# Install, as root on Debian 12, the servers the functional tests start as
# plain processes of their own:
# - what tools/backends/ceph_cluster.py needs to run a one-node Ceph
#   cluster: a monitor, an OSD, the ceph and rbd command line tools and the
#   rados/rbd Python bindings. ceph-mgr is left out on purpose: the RBD
#   tests do not need it and it costs ~300 MB.
# - radosgw, the Ceph RADOS Gateway that tools/backends/rgw_gateway.py
#   runs on that cluster: a real S3 server for the S3 tests, beside moto.
# - the coordination backends of the several-scrubbers tests: redis-server
#   (started on a port of the test's, to be killed on purpose) and etcd.
# - memcached, the cache of the Swift proxy that
#   tools/backends/swift_cluster.py runs (Swift and Keystone themselves
#   come from PyPI: tools/backends/swift_venvs.py).
#
# Usage: tools/backends/install_backends.sh [--when-root]
#
# --when-root: run by a non-root user, say what is missing and exit 0 (the
# tests that need it then skip, outside CI) instead of failing; tox's
# functional environment calls it that way.
#
# Idempotent and silent when everything is already installed. The package
# lists are refreshed only when an install without them fails, so a
# machine with fresh lists does not pay for an update.
#
# Then make the bindings importable by the test virtualenv:
#   .tox/functional/bin/python tools/backends/ceph_bindings.py

set -euo pipefail

readonly packages=(ceph-mon ceph-osd ceph-common python3-rados python3-rbd
                   uuid-runtime radosgw redis-server etcd-server memcached)

# True when every package is installed (not merely known or half-removed).
all_installed() {
    local package status
    for package in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$package" \
                 2>/dev/null) || return 1
        [[ $status == installed ]] || return 1
    done
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${packages[@]}" >/dev/null
}

main() {
    if all_installed; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        if [[ ${1:-} == --when-root ]]; then
            echo "$0: packages missing and not root: the tests that" \
                 "need them will skip; install them with: sudo $0" >&2
            return 0
        fi
        echo "$0: must run as root (it installs Debian packages)" >&2
        exit 2
    fi
    if ! apt_install 2>/dev/null; then
        apt-get update -qq >/dev/null
        apt_install
    fi
    echo "Installed: ${packages[*]}"
}

main "$@"
