#!/bin/bash
# Creates applications/NAME from scripts/app_template: `make new-app NAME=x` (run from the workspace root).
# Refuses a name that is not a lowercase Rust identifier or that already exists; changes nothing then.
set -euo pipefail
name="${1:-}"
if [[ ! "$name" =~ ^[a-z][a-z0-9_]*$ ]]; then
    echo "usage: make new-app NAME=x (a lowercase identifier: letters, digits, _; got '$name')" >&2
    exit 2
fi
directory="applications/$name"
if [ -e "$directory" ] || [ -e "kernel/$name" ] || [ -e "libs/$name" ]; then
    echo "new-app: a crate named $name already exists" >&2
    exit 1
fi
mkdir -p "$directory/src"
sed "s/@NAME@/$name/g" scripts/app_template/Cargo.toml.in > "$directory/Cargo.toml"
sed "s/@NAME@/$name/g" scripts/app_template/lib.rs.in > "$directory/src/lib.rs"
echo "new-app: created $directory (edit $directory/src/lib.rs, then \`make run\` and type \`$name\`)"
