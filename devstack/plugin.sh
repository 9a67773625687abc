# shellcheck shell=bash
# devstack plugin: runs this tree's glance-scrubber as a daemon next to
# devstack's glance-api, which is switched to delayed delete.
#
# stack install      install the scrubber in its own virtualenv
# stack post-config  turn on delayed_delete in glance-api.conf and write
#                    glance-scrubber.conf from glance-api's database and
#                    store settings
# stack extra        check the configuration with one pass, then start
#                    the daemon (devstack@glance-scrubber)
# unstack            stop the daemon
# clean              remove the virtualenv, the configuration and the lock

# Trace what the plugin does; the caller's setting is restored at the end.
_XTRACE_GLANCE_SCRUBBER=$(set +o | grep xtrace)
set -o xtrace

function install_glance_scrubber {
    local venv_options=()
    if [[ "$GLANCE_SCRUBBER_SYSTEM_SITE_PACKAGES" == "True" ]]; then
        venv_options+=(--system-site-packages)
    fi
    local extra_packages=()
    mapfile -t extra_packages < <(_glance_scrubber_extra_packages)
    python3 -m venv "${venv_options[@]}" "$GLANCE_SCRUBBER_VENV"
    "$GLANCE_SCRUBBER_VENV/bin/pip" install --upgrade pip
    # Under the constraints the tree is tested with (its own
    # upper-constraints.txt unless GLANCE_SCRUBBER_CONSTRAINTS names
    # another), so a new release upstream cannot break the stack.
    "$GLANCE_SCRUBBER_VENV/bin/pip" install \
        -c "$GLANCE_SCRUBBER_CONSTRAINTS" \
        -e "$GLANCE_SCRUBBER_DIR" "${extra_packages[@]}"
}

# Python packages the configured database and stores need beyond the
# tree's requirements (which bring the S3 and Swift stores but no
# database driver).
function _glance_scrubber_extra_packages {
    if [[ "$DATABASE_TYPE" == "postgresql" ]]; then
        # Built against devstack's libpq, as devstack's own psycopg2 is.
        echo psycopg2
    else
        echo PyMySQL
    fi
    if is_service_enabled s-proxy; then
        echo python-swiftclient
    fi
}

# Append section $1 of glance-api.conf, as it is, to the scrubber's file.
function _glance_scrubber_copy_section {
    local section=$1
    awk -v header="[$section]" '
        /^\[/ { copying = ($0 == header) }
        copying { print }
    ' "$GLANCE_API_CONF" >> "$GLANCE_SCRUBBER_CONF"
}

# The names of the backends in glance-api's enabled_backends
# ("fast:rbd,cheap:file" gives "fast cheap").
function _glance_scrubber_backend_names {
    local enabled_backends=$1
    local pair
    local -a pairs
    IFS=',' read -r -a pairs <<< "$enabled_backends"
    for pair in "${pairs[@]}"; do
        pair=${pair// /}
        echo "${pair%%:*}"
    done
}

function configure_glance_scrubber {
    iniset "$GLANCE_API_CONF" DEFAULT delayed_delete True

    sudo install -d -o "$STACK_USER" "$(dirname "$GLANCE_SCRUBBER_CONF")"
    install -d -m 0750 "$GLANCE_SCRUBBER_LOCK_PATH"
    rm -f "$GLANCE_SCRUBBER_CONF"

    # The database and the stores are glance-api's, copied section by
    # section so that every store option (swift_store_config_file,
    # rbd_store_pool, ...) comes along.
    _glance_scrubber_copy_section database
    _glance_scrubber_copy_section glance_store
    local enabled_backends backend
    enabled_backends=$(iniget "$GLANCE_API_CONF" DEFAULT enabled_backends)
    if [[ -n "$enabled_backends" ]]; then
        iniset "$GLANCE_SCRUBBER_CONF" DEFAULT enabled_backends "$enabled_backends"
        for backend in $(_glance_scrubber_backend_names "$enabled_backends"); do
            _glance_scrubber_copy_section "$backend"
        done
    fi
    local key
    key=$(iniget "$GLANCE_API_CONF" DEFAULT metadata_encryption_key)
    if [[ -n "$key" ]]; then
        iniset "$GLANCE_SCRUBBER_CONF" DEFAULT metadata_encryption_key "$key"
    fi

    iniset "$GLANCE_SCRUBBER_CONF" DEFAULT scrub_pool_size "$GLANCE_SCRUBBER_POOL_SIZE"
    iniset "$GLANCE_SCRUBBER_CONF" DEFAULT scrub_time "$GLANCE_SCRUBBER_SCRUB_TIME"
    iniset "$GLANCE_SCRUBBER_CONF" DEFAULT wakeup_time "$GLANCE_SCRUBBER_WAKEUP_TIME"
    iniset "$GLANCE_SCRUBBER_CONF" DEFAULT debug "$ENABLE_DEBUG_LOG_LEVEL"
    iniset "$GLANCE_SCRUBBER_CONF" oslo_concurrency lock_path "$GLANCE_SCRUBBER_LOCK_PATH"
    setup_logging "$GLANCE_SCRUBBER_CONF"
    chmod 0640 "$GLANCE_SCRUBBER_CONF"
}

function start_glance_scrubber {
    # run_process takes one absolute command line and no environment, so
    # env(1) passes the backend choice.
    local command=(
        /usr/bin/env "OS_GLANCE_SCRUBBER_BACKEND=$GLANCE_SCRUBBER_BACKEND"
        "$GLANCE_SCRUBBER_VENV/bin/glance-scrubber"
        --config-file "$GLANCE_SCRUBBER_CONF"
    )
    # One pass first: a configuration the scrubber refuses (exit status 2
    # or more) fails the stack here rather than in a unit that keeps dying.
    # Status 1 only means some images are left for the next pass.
    local status=0
    "${command[@]}" || status=$?
    if [[ $status -ge 2 ]]; then
        die $LINENO "glance-scrubber refused $GLANCE_SCRUBBER_CONF" \
            "(exit status $status)"
    fi
    # glance-api already runs with delayed_delete: post-config comes
    # before devstack starts the services.
    run_process glance-scrubber "${command[*]} --daemon"
}

function stop_glance_scrubber {
    stop_process glance-scrubber
}

function clean_glance_scrubber {
    rm -rf "$GLANCE_SCRUBBER_VENV" "$GLANCE_SCRUBBER_LOCK_PATH"
    sudo rm -f "$GLANCE_SCRUBBER_CONF"
}

if is_service_enabled glance-scrubber; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing glance-scrubber"
        install_glance_scrubber
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring glance-scrubber"
        configure_glance_scrubber
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting glance-scrubber"
        start_glance_scrubber
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_glance_scrubber
    fi

    if [[ "$1" == "clean" ]]; then
        clean_glance_scrubber
    fi
fi

$_XTRACE_GLANCE_SCRUBBER
