# Shared by scripts/demo and scripts/test: create ./.venv once, reinstall only when pyproject.toml changes.
ensure_venv() {
    local extra="$1" python="${PYTHON:-python3}" spec="." stamp
    [ -n "$extra" ] && spec=".[$extra]"
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    stamp=".venv/.auditspan-installed-${extra:-base}-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
        touch "$stamp"
    fi
}
