#!/usr/bin/env bash
# The methods study of docs/methods.md: one sweep per setting, every strategy x 3 seeds.
# On 2 CPU cores: ~35 min for `offline` (20 rounds), ~20 min for each other setting at
# ROUNDS=10 (transfer learning once per seed, shared by the strategies).
#   benchmarks/methods_study.sh [OUT] [SETTING ...]
# Environment: ROUNDS (10), STRATEGIES (all five), SEEDS (0,1,2), SET (extra `--set` arguments, e.g.
# "--set revisit_epochs=8"), CACHE_FROM (a finished study's OUT: its transfer learning is
# reused instead of recomputed, for schedules that change only the rounds), RESUME=1 (continue an
# interrupted study: finished trials are kept).
set -euo pipefail
OUT=${1:-runs/study}
shift || true
SETTINGS=("${@:-offline noniid offline-fashion fashion-to-digits fashion-split}")
ROUNDS=${ROUNDS:-10}
STRATEGIES=${STRATEGIES:-fedmd,ds-fl,fedmd-kl,kt-pfl,cronus}
read -r -a EXTRA <<< "${SET:-}"
GRID=(--grid strategy="$STRATEGIES" --grid seed="${SEEDS:-0,1,2}")
run() {
  local name=$1; shift
  if [ -n "${CACHE_FROM:-}" ] && [ -d "$CACHE_FROM/$name/tune/transfer_cache" ]; then
    mkdir -p "$OUT/$name/tune" && cp -r "$CACHE_FROM/$name/tune/transfer_cache" "$OUT/$name/tune/"
  fi
  fedmd-ray sweep --preset offline "$@" "${EXTRA[@]}" "${GRID[@]}" --out "$OUT/$name" -q ${RESUME:+--resume}
}
for setting in ${SETTINGS[*]}; do
  case $setting in
    offline) run offline ;;  # the preset's 20 rounds: the goal is stated there
    noniid) run noniid --set partition=noniid --set rounds="$ROUNDS" ;;
    offline-fashion) run offline-fashion --set public_classes=none --set private_data=fashion-mnist \
        --set private_classes=0,1,2,3,4,5 --set rounds="$ROUNDS" ;;
    fashion-to-digits) run fashion-to-digits --set public_data=fashion-mnist --set public_classes=none \
        --set private_data=mnist --set private_classes=0,1,2,3,4 --set rounds="$ROUNDS" ;;
    fashion-split) run fashion-split --set public_data=fashion-mnist --set private_data=fashion-mnist \
        --set rounds="$ROUNDS" ;;
    *) echo "unknown setting $setting" >&2; exit 2 ;;
  esac
done
