# Shared by scripts/run, scripts/test and scripts/bench: the virtualenv and PostgreSQL probe.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# Create .venv if needed and install the project (with the given extras) when pyproject changed.
ensure_venv() {
  local extras="${1:-}"
  if [[ ! -x "$PY" ]]; then
    local python="" candidate
    # The first interpreter that actually runs and is new enough (pyenv shims may not run).
    for candidate in python3.13 python3.12 python3.11 python3; do
      if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        python="$(command -v "$candidate")"; break
      fi
    done
    [[ -n "$python" ]] || { echo "billing-sync needs Python 3.11 or newer on PATH" >&2; exit 1; }
    echo "creating $VENV with $("$python" --version)" >&2
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$( (cat "$ROOT/pyproject.toml"; echo "$extras") | sha256sum | cut -c1-16)"
  if [[ ! -f "$stamp" ]]; then
    echo "installing billing-sync${extras:+[$extras]} into .venv" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

# The admin URL of a PostgreSQL server to test on, if one answers.
POSTGRES_ADMIN_URL="${BILLING_SYNC_TEST_POSTGRES:-postgresql://postgres@127.0.0.1:5432/postgres}"
postgres_reachable() {
  "$PY" - "$POSTGRES_ADMIN_URL" <<'PYEOF' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PYEOF
}
