#!/usr/bin/env bash
# Checks the history's form since the rule was written down (CONTRIBUTING.md, "Commits"): every
# commit after BASE has a subject of at most 72 characters and, when it has a body, a blank line
# between the two. Older commits are left as they are (history is not rewritten).
#
#   ci/commit-check.sh          exit 0: all commits since BASE read; 1: the offending ones listed
set -euo pipefail
cd "$(dirname "$0")/.."

# The last commit before the rule was enforced; every commit after it is checked.
BASE=d90ee2d

if [[ $(git rev-parse --is-shallow-repository) == true ]]; then
    echo "commit-check: a shallow clone holds too little history to check; not checked (clone in full to check)"
    exit 0
fi
if ! git rev-parse --quiet --verify "$BASE^{commit}" >/dev/null; then
    echo "commit-check: $BASE is not in this clone's history (a shallow clone?)" >&2
    exit 1
fi
bad=0
while read -r commit; do
    subject=$(git log -1 --format=%s "$commit")
    second=$(git log -1 --format=%B "$commit" | sed -n 2p)
    if (( ${#subject} > 72 )); then
        echo "commit-check: ${commit:0:10}: subject of ${#subject} characters (at most 72): $subject"
        bad=1
    fi
    if [[ -n $second ]]; then
        echo "commit-check: ${commit:0:10}: no blank line between subject and body"
        bad=1
    fi
done < <(git rev-list --no-merges "$BASE..HEAD")
(( bad == 0 )) && echo "commit-check: $(git rev-list --count --no-merges "$BASE..HEAD") commits since $BASE read well"
exit "$bad"
