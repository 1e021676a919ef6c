# Sourced by scripts/test-aws, scripts/test-awsapi and scripts/bench-lambda: the pinned
# Python tools and a moto server on a free loopback port.

# venv DIR REQUIREMENTS: makes DIR once and (re)installs REQUIREMENTS when that file changed.
venv() {
  local dir=$1 requirements=$2 stamp
  stamp=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ ! -x $dir/bin/python ]]; then
    python3 -m venv "$dir"
  fi
  if [[ "$(cat "$dir/.requirements-sha256" 2>/dev/null)" != "$stamp" ]]; then
    echo "==> installing $requirements into $dir"
    # `python -m pip`, not bin/pip: a copied venv's scripts name the original's interpreter.
    "$dir/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"
    echo "$stamp" >"$dir/.requirements-sha256"
  fi
}

# start_moto LOG: .venv's moto_server on a free 127.0.0.1 port, waited for (30 s at most);
# sets moto_pid and ORDERFLOW_MOTO_URL. The caller traps stop_moto on EXIT.
start_moto() {
  local log=$1 port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 60); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$moto_pid" 2>/dev/null; then
      echo "moto did not start:" >&2; cat "$log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "==> moto on 127.0.0.1:$port"
  export ORDERFLOW_MOTO_URL="http://127.0.0.1:$port"
}

stop_moto() {
  if [[ -n ${moto_pid:-} ]]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
}
