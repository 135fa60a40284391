#!/usr/bin/env bash
# The serde feature's tests and examples (the README's test command runs the
# default features only).
set -euo pipefail
cargo test --quiet --features serde --lib serde_impls
cargo test --quiet --features serde --doc serde_impls
