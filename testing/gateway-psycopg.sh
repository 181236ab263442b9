#!/usr/bin/env bash
# gateway-psycopg.sh — runs testing/gateway/psycopg_example.py (the README's psycopg
# example) against a running JWT gateway. psycopg 3 comes from the driver matrix's
# venv (.run/drivers-venv), created with the pinned version when missing.
#
# Env: GW_PORT GW_DB GW_ROLE GW_CA GW_TOKEN GW_TENANT GW_ROWS GW_OTHER_TENANT
# (router/tests/gateway_keys.rs sets them for its test bed).
set -euo pipefail
# shellcheck source=testing/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
venv="$PG_RUN_DIR/drivers-venv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ensure_psycopg "$venv" "$work" gateway-psycopg
exec "$venv/bin/python" "$PG_ROOT_DIR/testing/gateway/psycopg_example.py"
