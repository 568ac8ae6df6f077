//! The boundary between C and Rust: every entry point runs its body through [`call`] or
//! [`call_db`], which catch panics (no unwind ever crosses into C), turn failures into status
//! codes and record the message for `etch_errmsg()`. The pointer helpers below are the only
//! places that turn C pointers into Rust references, each checking NULL first.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::etch_db;
use crate::error::{Failure, FfiResult, ETCH_INTERNAL, ETCH_OK};

thread_local! {
    /// The calling thread's last failure of a call that had no usable `etch_db` (none yet:
    /// "no error"). Const-initialised, so a thread that never fails allocates nothing here.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// A message as a C string: interior NUL bytes (possible in lossy key text) are escaped.
pub(crate) fn c_message(message: &str) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

/// Text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (panic caught at the C boundary): {text}")
}

/// Runs an entry point's body: panics become `ETCH_INTERNAL`, failures are returned as codes.
fn run(f: impl FnOnce() -> FfiResult) -> Result<(), Failure> {
    // AssertUnwindSafe: after a panic we only read the payload and return; no state the body
    // touched is observed again on this path (the per-handle error map tolerates poisoning).
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Failure::new(ETCH_INTERNAL, panic_message(&*payload))),
    }
}

/// Records `failure` as the calling thread's last handle-less error and returns its code.
fn record_thread(failure: Failure) -> c_int {
    let message = c_message(&failure.message);
    // try_with: during thread teardown the slot may be gone; the code still goes back.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(message));
    failure.code
}

/// Runs the body of an entry point that has no `etch_db` argument.
pub(crate) fn call(f: impl FnOnce() -> FfiResult) -> c_int {
    match run(f) {
        Ok(()) => ETCH_OK,
        Err(failure) => record_thread(failure),
    }
}

/// Runs the body of an entry point on a handle: NULL gives `ETCH_INVALID` (recorded as a
/// handle-less error), other failures are recorded on the handle for the calling thread.
pub(crate) fn call_db(db: *const etch_db, f: impl FnOnce(&etch_db) -> FfiResult) -> c_int {
    // SAFETY: by the header's contract a non-NULL `etch_db *` is a live handle from etch_open()
    // or etch_restore() that has not been closed; etch_db is Sync, so a shared reference may be
    // used while other threads use it too.
    let Some(handle) = (unsafe { db.as_ref() }) else {
        return record_thread(Failure::invalid("db is NULL"));
    };
    match run(|| f(handle)) {
        Ok(()) => ETCH_OK,
        Err(failure) => handle.record(failure),
    }
}

/// The calling thread's last handle-less error message.
pub(crate) fn thread_message() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ref().map(|m| m.as_ptr()))
        .ok()
        .flatten()
        .unwrap_or(c"no error".as_ptr())
}

/// Sets an object out-parameter to NULL, if the caller passed one. Every entry point with an
/// object out-parameter calls this first, before checking any argument (the handle included),
/// so that on every failure path the caller finds NULL there, never its stale contents.
///
/// # Safety
/// A non-NULL `ptr` must be valid for writes of a pointer (the header's contract for
/// out-parameters).
pub(crate) unsafe fn clear<T>(ptr: *mut *mut T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and writable by the caller's guarantee; write() reads nothing.
        unsafe { ptr.write(std::ptr::null_mut()) };
    }
}

/// [`clear`] for an out-parameter of a borrowed (`const`) object.
///
/// # Safety
/// As [`clear`].
pub(crate) unsafe fn clear_const<T>(ptr: *mut *const T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and writable by the caller's guarantee; write() reads nothing.
        unsafe { ptr.write(std::ptr::null()) };
    }
}

/// A number identifying the calling thread for per-handle error messages, unique for the
/// process's lifetime. Not `std::thread::current().id()`: that allocates the thread's `Thread`
/// handle on first use, which valgrind reports as "possibly lost" in a C program's main thread
/// (its thread-locals are never torn down); a const-initialised `Cell` allocates nothing.
pub(crate) fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }
    TOKEN
        .try_with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
        // During thread teardown: a token no live thread holds.
        .unwrap_or(0)
}

/// Borrows `(ptr, len)` as bytes. NULL is accepted only with `len == 0`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` bytes for `'a`, unmodified meanwhile.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Failure::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: ptr is non-NULL, len fits isize, and the caller guarantees ptr is valid for len
    // bytes during 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A file path from a NUL-terminated C string (any bytes but NUL; no encoding assumed).
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string valid for reads.
pub(crate) unsafe fn path(ptr: *const c_char, what: &str) -> FfiResult<PathBuf> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's guarantee.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// Borrows an object argument, refusing NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to a live object of type `T` for `'a` that no other thread
/// mutates meanwhile.
pub(crate) unsafe fn object<'a, T>(ptr: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller's guarantee.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// Mutably borrows an object argument, refusing NULL.
///
/// # Safety
/// A non-NULL `ptr` must point to a live object of type `T` for `'a` that nothing else
/// accesses meanwhile.
pub(crate) unsafe fn object_mut<'a, T>(ptr: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's guarantee.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// An output parameter known to be non-NULL and writable.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Stores `value` (without reading or dropping what the slot held before, which may be
    /// uninitialised C memory).
    pub(crate) fn set(&self, value: T) {
        // SAFETY: Out is only built by `out`/`opt_out`, whose callers guarantee the pointer is
        // valid for writes of a T for the duration of the call; write() never reads the old
        // contents.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A required output parameter: NULL is `ETCH_INVALID`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for writes of a `T` until the entry point returns.
pub(crate) unsafe fn out<T>(ptr: *mut T, what: &str) -> FfiResult<Out<T>> {
    NonNull::new(ptr)
        .map(Out)
        .ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// An optional output parameter: NULL means the caller does not want it.
///
/// # Safety
/// As [`out`].
pub(crate) unsafe fn opt_out<T>(ptr: *mut T) -> Option<Out<T>> {
    NonNull::new(ptr).map(Out)
}

/// A revision argument: the header's one rule is that no revision is negative (ETCH_INVALID in
/// every call); what 0 means is up to each call.
pub(crate) fn revision(rev: i64, what: &str) -> FfiResult<i64> {
    if rev < 0 {
        return Err(Failure::invalid(format!(
            "{what} {rev} is negative (revisions are >= 0)"
        )));
    }
    Ok(rev)
}

/// A C boolean (`int`): 0 is false, anything else true.
pub(crate) fn flag(v: c_int) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ETCH_INVALID;

    #[test]
    fn a_panic_becomes_etch_internal_with_its_message() {
        let code = call(|| panic!("boom"));
        assert_eq!(code, ETCH_INTERNAL);
        // SAFETY: thread_message returns a pointer into this thread's NUL-terminated slot.
        let msg = unsafe { CStr::from_ptr(thread_message()) }
            .to_str()
            .unwrap();
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn null_handles_and_buffers_are_invalid() {
        assert_eq!(call_db(std::ptr::null(), |_| Ok(())), ETCH_INVALID);
        // SAFETY: NULL pointers are accepted by the helpers and never dereferenced.
        unsafe {
            assert!(bytes(std::ptr::null(), 0, "k").unwrap().is_empty());
            assert_eq!(
                bytes(std::ptr::null(), 3, "k").unwrap_err().code,
                ETCH_INVALID
            );
            assert_eq!(path(std::ptr::null(), "p").unwrap_err().code, ETCH_INVALID);
            assert!(out::<i64>(std::ptr::null_mut(), "o").is_err());
        }
    }

    #[test]
    fn messages_with_nul_bytes_survive() {
        assert_eq!(c_message("a\0b").to_str().unwrap(), "a\\0b");
    }
}
