#!/usr/bin/env bash
# make demo: run playbooks/demo.yml twice (the second run must change nothing), then stop the
# demo nginx by its PID, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
demo_dir=build/demo
pidfile=$demo_dir/nginx/nginx.pid
stop_nginx() {
  if [[ -s $pidfile ]]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -QUIT "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "demo: nginx (PID $pid) stopped"
    fi
  fi
}
trap stop_nginx EXIT
playbook=(ansible-playbook -i "localhost," playbooks/demo.yml)

echo "=== demo: first run ==="
"${playbook[@]}"

echo "=== demo: second run (nothing is due: expect changed=0 and no reload) ==="
out=$(mktemp)
"${playbook[@]}" | tee "$out"
recap=$(grep -E '^localhost +:' "$out" | tail -1)
rm -f "$out"
if [[ $recap =~ changed=0[[:space:]] && $recap =~ failed=0[[:space:]] ]]; then
  echo "demo: OK - the second run changed nothing"
else
  echo "demo: FAILED - the second run was not a no-op: $recap" >&2
  exit 1
fi
