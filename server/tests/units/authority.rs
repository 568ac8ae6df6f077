//! `src/authority.rs` compiled into this test binary with its own tests, which drive its
//! private HTTP/2 frame machine and HPACK integer codec directly. The module uses nothing else
//! of the crate, so it builds here on its own.

#[allow(dead_code, unreachable_pub)]
#[path = "../../src/authority.rs"]
mod source;
