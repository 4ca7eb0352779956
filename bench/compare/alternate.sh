#!/bin/bash
# Two (or more) checkouts of llm-router measured in alternation, N rounds, CPU per request of the
# gateway at CONNS connections (bench/compare/cpu_point.py), so the machine's drift hits all alike.
# usage: bench/compare/alternate.sh N CONNS VENV1:CHECKOUT1 VENV2:CHECKOUT2 ...
#   e.g. PLUGINS=redact,tags bench/compare/alternate.sh 4 8 /old/.venv:/old .venv:$PWD
# PLUGINS: comma-separated plugins, or "default" (plugins.toml's list). OPS: a store URL (memory://, or
# redis://127.0.0.1:6379/0 of a redis-server you started) to measure with operations on, as bench/run.py --ops.
# Prints each side's figures, sorted.
HERE=$(cd "$(dirname "$0")" && pwd)
N=$1; C=$2; shift 2
for t in "$@"; do echo -n > ${TMPDIR:-/tmp}/alternate.$(basename ${t#*:}); done
for i in $(seq $N); do for t in "$@"; do v=${t%%:*}; tr=${t#*:}
  (cd $tr && PYTHONPATH=$tr flock /tmp/bench.lock $v/bin/python $HERE/cpu_point.py --plugins "${PLUGINS:-default}" --conns $C --seconds 4 ${OPS:+--ops $OPS} 2>&1 | tail -1 | awk '{print $4}' >> ${TMPDIR:-/tmp}/alternate.$(basename $tr))
done; done
for t in "$@"; do echo "$(basename ${t#*:}): $(sort -n ${TMPDIR:-/tmp}/alternate.$(basename ${t#*:}) | tr '\n' ' ')"; done
