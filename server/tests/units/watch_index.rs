//! `src/watch_index.rs` compiled into this test binary with its own tests, which check the
//! index's private buckets against `Range::contains`. The module uses nothing else of the
//! crate, so it builds here on its own.

#[allow(dead_code, unreachable_pub)]
#[path = "../../src/watch_index.rs"]
mod source;
