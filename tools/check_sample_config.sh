#!/usr/bin/env bash
# Check that etc/glance-scrubber.conf is what oslo-config-generator makes
# from the option definitions in the code, so the sample can never drift
# from what glance-scrubber reads.
#
# Usage: tools/check_sample_config.sh          check; exit 1 when stale
#        tools/check_sample_config.sh --write  regenerate the sample
#
# The generator is taken from $OSLO_CONFIG_GENERATOR, else from PATH.
# Exit status: 0 up to date (or written), 1 stale, 2 the generator failed.

set -euo pipefail

readonly generator_config=etc/oslo-config-generator/glance-scrubber.conf
readonly sample=etc/glance-scrubber.conf

usage() {
    echo "usage: $0 [--write]" >&2
    exit 2
}

find_generator() {
    if [[ -n "${OSLO_CONFIG_GENERATOR:-}" ]]; then
        echo "$OSLO_CONFIG_GENERATOR"
    elif command -v oslo-config-generator >/dev/null; then
        command -v oslo-config-generator
    else
        echo "oslo-config-generator not found: install the requirements" \
             "or set OSLO_CONFIG_GENERATOR" >&2
        exit 2
    fi
}

# Writes the sample to $1. Option defaults read from the environment
# (OSLO_LOCK_PATH sets lock_path's default, for one) would leak into the
# sample, so the generator runs with a minimal environment. Its stderr
# (deprecation warnings, store drivers whose optional library is missing)
# is shown only when it fails.
generate() {
    local output=$1 generator errors
    generator=$(find_generator)
    errors=$(mktemp)
    if ! env -i PATH="$PATH" HOME="$workdir" LC_ALL=C.UTF-8 \
            "$generator" --config-file "$generator_config" \
            --output-file "$output" 2>"$errors"; then
        cat "$errors" >&2
        rm -f "$errors"
        echo "$0: oslo-config-generator failed" >&2
        exit 2
    fi
    rm -f "$errors"
}

main() {
    local mode='check'
    case "${1:-}" in
        '') ;;
        --write) mode='write' ;;
        *) usage ;;
    esac

    cd "$(dirname "$0")/.."
    workdir=$(mktemp -d)
    trap 'rm -rf "$workdir"' EXIT

    if [[ $mode == 'write' ]]; then
        generate "$sample"
        echo "$sample regenerated."
        return 0
    fi

    generate "$workdir/sample.conf"
    if ! diff -u --label "$sample (checked in)" \
            --label "$sample (generated)" \
            "$sample" "$workdir/sample.conf" >"$workdir/diff"; then
        echo "$sample is stale: it differs from what the option" \
             "definitions generate. Run 'tox -e genconfig' (or $0" \
             "--write) and commit the result. If you changed no option," \
             "check the installed versions of the libraries in" \
             "$generator_config. First lines of the difference:" >&2
        head -n 60 "$workdir/diff" >&2
        return 1
    fi
    echo "$sample is up to date."
}

main "$@"
