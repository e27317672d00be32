#!/usr/bin/env bash
# The skewed-splits study of docs/methods.md#skewed-splits: per setting, two sweeps over seeds 0-2,
#   paper/   the paper's `fedmd` as it is (no extras), and
#   robust/  configs/robust.toml (the recommended recipe, as it is when the script runs) with the
#            strategy swept: the control (`local`), `fedmd-cw` and the recipe (`fedmd-kl`), so the
#            control gets the same extra private training as the methods.
# The robust sweep reuses the paper sweep's transfer learning (same transfer fields).
# On 2 CPU cores: ~25 min per setting at ROUNDS=10.
#   benchmarks/skew_study.sh [OUT] [SETTING ...]
# Settings: offline-aALPHA, fashion-split-aALPHA (partition=noniid at noniid_alpha=ALPHA), offline-iid.
# Read them with: python benchmarks/methods_study.py OUT/offline-a0.1/paper,OUT/offline-a0.1/robust ...
set -euo pipefail
OUT=${1:-runs/skew}
shift || true
SETTINGS=("${@:-offline-a0.05 offline-a0.1 offline-a0.5 fashion-split-a0.1}")
ROUNDS=${ROUNDS:-10}
SEEDS=${SEEDS:-0,1,2}
sweep() {  # sweep NAME PART ARGS...
  local name=$1 part=$2; shift 2
  fedmd-ray sweep --preset offline --set rounds="$ROUNDS" --grid seed="$SEEDS" "$@" --out "$OUT/$name/$part" -q
}
setting() {  # setting NAME ARGS...: both sweeps of one setting
  local name=$1; shift
  sweep "$name" paper --set strategy=fedmd "$@"
  mkdir -p "$OUT/$name/robust/tune" && cp -r "$OUT/$name/paper/tune/transfer_cache" "$OUT/$name/robust/tune/"
  sweep "$name" robust --config configs/robust.toml --grid strategy=local,fedmd-cw,fedmd-kl "$@"
}
for name in ${SETTINGS[*]}; do
  case $name in
    offline-a*) setting "$name" --set partition=noniid --set noniid_alpha="${name#offline-a}" ;;
    fashion-split-a*) setting "$name" --set public_data=fashion-mnist --set private_data=fashion-mnist \
        --set partition=noniid --set noniid_alpha="${name#fashion-split-a}" ;;
    offline-iid) setting "$name" ;;
    *) echo "unknown setting $name" >&2; exit 2 ;;
  esac
done
