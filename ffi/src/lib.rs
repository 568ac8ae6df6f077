//! The C API of etch: `libetch.so` / `libetch.a` with the header `include/etch.h`, generated
//! from this crate by cbindgen (see `tests/header.rs`).
//!
//! Conventions, for every entry point: opaque handles; an `int` status code (`ETCH_OK`, or a
//! code from `error.rs`); results through out-parameters; keys and values as (pointer, length);
//! each object the library allocates has one documented release function; NULL arguments give
//! `ETCH_INVALID`; no Rust panic crosses the boundary (see `boundary.rs`).
//!
//! One `etch_db *` type for three backends (`backend.rs`): a local file (etch_open()), an
//! in-process cluster member (etch_open_member(), `cluster.rs`) and a remote server
//! (etch_connect(), `remote.rs`).

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]
// The pointer contract is stated once, in the header's preamble, for every function.
#![allow(clippy::missing_safety_doc)]

mod backend;
mod boundary;
pub mod cluster;
pub mod db;
pub mod error;
pub mod iter;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod remote;
pub mod txn;
pub mod watch;
pub mod write;

use std::ffi::c_char;

/// Major version of the etch library this header belongs to.
pub const ETCH_VERSION_MAJOR: i32 = 0;
/// Minor version of the etch library this header belongs to.
pub const ETCH_VERSION_MINOR: i32 = 1;
/// Patch version of the etch library this header belongs to.
pub const ETCH_VERSION_PATCH: i32 = 0;

/// The version of the linked library as a static NUL-terminated string ("0.1.0"); compare it
/// with the ETCH_VERSION_* macros to detect a header/library mismatch. Never NULL; do not
/// free it. Thread-safe.
#[no_mangle]
pub extern "C" fn etch_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_the_package_version() {
        let parse = |s: &str| s.parse::<i32>().unwrap();
        assert_eq!(ETCH_VERSION_MAJOR, parse(env!("CARGO_PKG_VERSION_MAJOR")));
        assert_eq!(ETCH_VERSION_MINOR, parse(env!("CARGO_PKG_VERSION_MINOR")));
        assert_eq!(ETCH_VERSION_PATCH, parse(env!("CARGO_PKG_VERSION_PATCH")));
        // SAFETY: etch_version returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(etch_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
