#!/usr/bin/env bash
# Installs what the client-interop tests (tests/java_client.rs, tests/pika_client.rs) need on a
# fresh Debian machine where we are root:
#   - librabbitmq-client-java: /usr/share/java/amqp-client.jar (RabbitMQ Java client 5.0.0)
#   - default-jdk-headless:    javac + java
#   - libslf4j-java:           slf4j-api.jar (amqp-client links against it at runtime) and
#                              slf4j-nop.jar (a binding, so slf4j prints no "no binder" warning)
#   - pika from PyPI
# Idempotent: each step is skipped when what it provides is already there. Starts no service.
set -euo pipefail

# "package:file[,file...]" - apt runs only if one of these files is missing.
debs=(
    "librabbitmq-client-java:/usr/share/java/amqp-client.jar"
    "default-jdk-headless:/usr/bin/javac,/usr/bin/java"
    "libslf4j-java:/usr/share/java/slf4j-api.jar,/usr/share/java/slf4j-nop.jar"
)

missing=()
for entry in "${debs[@]}"; do
    pkg=${entry%%:*}
    IFS=, read -r -a files <<<"${entry#*:}"
    present=1
    for f in "${files[@]}"; do
        [[ -e $f ]] || present=0
    done
    if ((present)); then
        echo "skip: $pkg (${files[*]} present)"
    else
        missing+=("$pkg")
    fi
done

# pip itself may be missing on a bare Debian python3.
if ! python3 -c 'import pika' 2>/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for pkg in "${missing[@]}"; do
        echo "installed: $pkg"
    done
fi

if python3 -c 'import pika' 2>/dev/null; then
    echo "skip: pika $(python3 -c 'import pika; print(pika.__version__)') (importable)"
else
    pip_args=(--quiet --disable-pip-version-check --root-user-action=ignore)
    # Debian's own python3 refuses pip installs outside a venv (PEP 668); the tests run that
    # interpreter directly, so install into it anyway.
    if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        pip_args+=(--break-system-packages)
    fi
    python3 -m pip install "${pip_args[@]}" pika
    echo "installed: pika $(python3 -c 'import pika; print(pika.__version__)')"
fi
