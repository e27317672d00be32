#!/usr/bin/env bash
# The methods study of docs/methods.md: one sweep per setting, every strategy x 3 seeds.
# ~35 min per setting on 2 CPU cores (transfer learning once per seed, shared by the strategies).
set -euo pipefail
OUT=${1:-runs/study}
GRID=(--grid strategy=fedmd,ds-fl,fedmd-kl,kt-pfl,cronus --grid seed=0,1,2)
run() { local name=$1; shift; fedmd-ray sweep --preset offline "$@" "${GRID[@]}" --out "$OUT/$name" --quiet; }
run offline
run noniid --set partition=noniid
run offline-fashion --set public_classes=none --set private_data=fashion-mnist --set private_classes=0,1,2,3,4,5
run fashion-to-digits --set public_data=fashion-mnist --set public_classes=none --set private_data=mnist \
    --set private_classes=0,1,2,3,4
run fashion-split --set public_data=fashion-mnist --set private_data=fashion-mnist
