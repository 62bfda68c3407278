# shellcheck shell=bash
# Helpers shared by the scripts of infra/, sourced after they set `root`:
#
#   . "$root/infra/lib.sh"
#
# It defines functions and the variables below (reset here, so that nothing is taken from the
# environment; a script sets them after sourcing) and runs nothing else: each script keeps its own
# `set -euo pipefail`, and installs its traps with trap_stop_all where it did before.
#
#   log MESSAGE...          "\n== MESSAGE" on stdout; LOG_FD=2 writes to stderr instead,
#                           LOG_TAG=name prefixes "[name] ", LOG_TAG with LOG_SINCE=<epoch seconds>
#                           prefixes "[name %3ss] " (the seconds since then).
#   pip_pinned [--log MESSAGE] [--import MODULES] VENV SPEC...
#                           creates the venv VENV (python3 -m venv) when it has no python, then
#                           pip-installs every SPEC ("name[extras]==version") unless each one is
#                           installed at exactly its version (with --import: unless
#                           `import MODULES` works in the venv); --log MESSAGE is logged only when
#                           it installs.
#   PIDS+=($!)              processes to stop on exit;
#   trap_stop_all [--signals]
#                           traps EXIT with stop_all (with --signals also INT and TERM with
#                           `exit 130`, which then runs stop_all);
#   stop_all                runs the hook pre_stop_hook when the script defines it, stops PIDS
#                           (TERM, up to 5 s, then KILL; with STOP_REAP=1 also waits for each), then
#                           runs the hook post_stop_hook RC (RC: the status the script exits with)
#                           when the script defines it.
#   wait_port PORT PID      waits (60 s at most) until 127.0.0.1:PORT accepts; fails as soon as PID
#                           has died.
#   free_port               prints a free loopback port, asking $FREE_PORT_PYTHON (python3; the
#                           scripts with a venv set "$VENV/bin/python").

LOG_TAG=
LOG_SINCE=
LOG_FD=1
FREE_PORT_PYTHON=python3
STOP_REAP=
PIDS=()

log() {
  local tag=
  if [ -n "$LOG_TAG" ] && [ -n "$LOG_SINCE" ]; then
    printf -v tag '[%s %3ss] ' "$LOG_TAG" "$(($(date +%s) - LOG_SINCE))"
  elif [ -n "$LOG_TAG" ]; then
    tag="[$LOG_TAG] "
  fi
  printf '\n== %s%s\n' "$tag" "$*" >&"$LOG_FD"
}

# True when every SPEC ("name[extras]==version") is installed in VENV at exactly that version.
pins_installed() { # venv spec...
  local venv=$1
  shift
  "$venv/bin/python" -c '
import importlib.metadata as m, re, sys
want = [re.fullmatch(r"([^=\[]+)(?:\[[^\]]*\])?==(.+)", spec).groups() for spec in sys.argv[1:]]
sys.exit(0 if all(m.version(name) == version for name, version in want) else 1)
' "$@" 2>/dev/null
}

pip_pinned() { # [--log message] [--import modules] venv spec...
  local message= modules=
  while [ $# -gt 0 ]; do
    case $1 in
      --log) message=$2; shift 2 ;;
      --import) modules=$2; shift 2 ;;
      *) break ;;
    esac
  done
  local venv=$1
  shift
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if [ -n "$modules" ]; then
    "$venv/bin/python" -c "import $modules" 2>/dev/null && return 0
  else
    pins_installed "$venv" "$@" && return 0
  fi
  if [ -n "$message" ]; then log "$message"; fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
}

stop_pids() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    if [ -n "$STOP_REAP" ]; then wait "$p" 2>/dev/null || true; fi
  done
}

stop_all() {
  local rc=$?
  if declare -F pre_stop_hook >/dev/null; then pre_stop_hook; fi
  stop_pids
  if declare -F post_stop_hook >/dev/null; then post_stop_hook "$rc"; fi
}

trap_stop_all() { # [--signals]
  trap stop_all EXIT
  if [ "${1:-}" = --signals ]; then trap 'exit 130' INT TERM; fi
}

wait_port() { # port pid
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

free_port() {
  "$FREE_PORT_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
