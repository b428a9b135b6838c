#!/usr/bin/env bash
# The packages' TypeScript declarations, checked by tsc (pinned in
# package.json) with two files that use every entry point as an application
# does; each also holds a line that must NOT type-check (@ts-expect-error),
# so declarations that fell back to `any` fail here.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/node_modules"
ln -s "$PWD/pkg/node" "$work/node_modules/keygate"
ln -s "$PWD/pkg/web" "$work/node_modules/keygate-web"
ln -s "$PWD/node_modules/@types" "$work/node_modules/@types"
cp tests/types/*.ts "$work/"
tsc=./node_modules/.bin/tsc
$tsc --noEmit --strict --module node16 --moduleResolution node16 --target es2022 --lib es2022,dom --types node "$work/node-use.ts"
$tsc --noEmit --strict --module es2022 --moduleResolution bundler --target es2022 --lib es2022,dom --types node "$work/web-use.ts"
echo "types: tests/types/node-use.ts and web-use.ts type-check against pkg/node and pkg/web"
