//! Cross-crate and multi-process tests for Francis live in `tests/` of this package.
