#!/usr/bin/env bash
# Installs what Jobcast needs on a Debian/Ubuntu machine: redis-server (and, with --test,
# Chromium and iproute2 for the browser and media tests), then a virtual environment in .venv
# with Jobcast installed in it. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

pkgs=()
command -v redis-server >/dev/null || pkgs+=(redis-server)
if [[ $want_test == 1 ]]; then
  command -v chromium >/dev/null || pkgs+=(chromium)
  command -v ip >/dev/null || pkgs+=(iproute2)
  # nftables: the media tests drop a share of one viewer's packets (the kernel may lack netem)
  command -v nft >/dev/null || pkgs+=(nftables)
  # A CJK font, so that screenshots taken by the browser tests show Chinese text.
  [[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || pkgs+=(fonts-wqy-microhei)
fi
python3 -m venv --help >/dev/null 2>&1 || pkgs+=(python3-venv)
python3 -c "import ensurepip" >/dev/null 2>&1 || pkgs+=(python3-venv)
if ((${#pkgs[@]})); then
  SUDO=""
  [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ $want_test == 1 ]]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
