# The wheels a device run carries in .whl/ (ModelOpt and what it needs, no network there),
# installed into SITE_DIR, which goes first on PYTHONPATH. Sourced by device_modelopt.sh and
# device_quality.sh after scripts/export/lib/log.sh (log, die); defines functions only.
# shellcheck shell=bash

# install_carried_wheels REQUIRED: pip install --no-index --no-deps of REPO_ROOT/.whl/*.whl into
# SITE_DIR (log in OUT/pip.log). REQUIRED=1: no wheels is an error; 0: then nothing is installed.
install_carried_wheels() {
  local required="$1"
  local -a wheels
  shopt -s nullglob
  wheels=("${REPO_ROOT}"/.whl/*.whl)
  shopt -u nullglob
  if ((${#wheels[@]} > 0)); then
    log "install ${#wheels[@]} wheels into ${SITE_DIR}"
    "${PYTHON}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "${SITE_DIR}" "${wheels[@]}" >"${OUT}/pip.log" 2>&1 || {
      tail -n 20 "${OUT}/pip.log" >&2
      die --code 1 "pip install of the wheels failed (log: ${OUT}/pip.log)"
    }
  elif ((required)); then
    die --code 1 "no wheels in ${REPO_ROOT}/.whl (carry .whl with the run)"
  fi
  export PYTHONPATH="${SITE_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
}
