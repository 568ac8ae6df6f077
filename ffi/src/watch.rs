//! Watch: a stream of changes to a key or range, read by polling (`etch_watch_poll()`) or
//! delivered to a callback on a library thread (`etch_watch_start()`).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use etch_engine::{Event, EventKind, WatchCanceller, WatchOptions, WatchResponse};

use crate::backend::AnyWatcher;
use crate::boundary::{self, call, call_db, clear, flag, object_mut, out};
use crate::db::etch_db;
use crate::error::{Failure, FfiResult, ETCH_CLOSED, ETCH_INTERNAL, ETCH_OK};
use crate::kv::{etch_kv, raw_range, view};

/// Event kind: a put (creation or update).
pub const ETCH_EVENT_PUT: c_int = 0;
/// Event kind: a deletion (kv holds the key, mod_revision is the deletion's revision, the other
/// fields are zero).
pub const ETCH_EVENT_DELETE: c_int = 1;

/// One change (etcd's mvccpb.Event). Borrowed from its etch_watch_resp.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_event {
    /// ETCH_EVENT_PUT or ETCH_EVENT_DELETE.
    pub kind: c_int,
    /// The key after the change.
    pub kv: etch_kv,
    /// The key before the change if prev_kv was requested and it existed, else NULL.
    pub prev_kv: *const etch_kv,
}

/// One watch response. From etch_watch_poll() it is owned by the caller and released with
/// etch_watch_resp_free(); passed to a callback it is borrowed for the duration of the call
/// only. Every pointer inside (events, their key-values) lives exactly as long as the response.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_watch_resp {
    /// ETCH_OK for a normal response. For callbacks only: non-zero in the final call made when
    /// the watch stops on an error (ETCH_CLOSED after etch_close() of the store, ETCH_IO, ...);
    /// no call follows it.
    pub status: c_int,
    /// Store revision when the response was made: every matching change up to it has been
    /// delivered.
    pub header_revision: i64,
    /// 1 if the watch was cancelled because it needed compacted history (no more responses
    /// follow), else 0.
    pub canceled: c_int,
    /// The compact revision, when canceled.
    pub compact_revision: i64,
    /// Number of events (0 for a progress notification or a cancellation).
    pub event_count: usize,
    /// The events in revision order (NULL when event_count is 0). Events of one transaction
    /// are always in the same response.
    pub events: *const etch_event,
    /// 1 in the one response that completes the replay of a watch started at a past revision
    /// (etch_watch_opts.start_revision): every matching change up to the revision current when
    /// the watch was created has then been delivered, and what follows is live. It may carry
    /// the last replayed events or none. Always 0 for a watch from now (nothing to replay).
    pub caught_up: c_int,
}

/// A response owned by Rust, with the C view first so a pointer to this is a pointer to it.
#[repr(C)]
struct OwnedResp {
    resp: etch_watch_resp,
    /// Views into `source`; `events[i].prev_kv` points into `prevs`. None of the three Vecs
    /// changes after construction, so their heap buffers (which the views point to) stay put.
    events: Vec<etch_event>,
    prevs: Vec<etch_kv>,
    source: Vec<Event>,
}

impl OwnedResp {
    fn new(status: c_int, r: WatchResponse) -> Box<OwnedResp> {
        let source = r.events;
        let empty = view(&Default::default());
        let prevs: Vec<etch_kv> = source
            .iter()
            .map(|e| e.prev_kv.as_ref().map_or(empty, view))
            .collect();
        let events: Vec<etch_event> = source
            .iter()
            .zip(&prevs)
            .map(|(e, p)| etch_event {
                kind: match e.kind {
                    EventKind::Put => ETCH_EVENT_PUT,
                    EventKind::Delete => ETCH_EVENT_DELETE,
                },
                kv: view(&e.kv),
                prev_kv: if e.prev_kv.is_some() {
                    p
                } else {
                    std::ptr::null()
                },
            })
            .collect();
        let resp = etch_watch_resp {
            status,
            header_revision: r.header_revision,
            canceled: c_int::from(r.canceled),
            compact_revision: r.compact_revision,
            event_count: events.len(),
            events: if events.is_empty() {
                std::ptr::null()
            } else {
                events.as_ptr()
            },
            caught_up: c_int::from(r.caught_up),
        };
        Box::new(OwnedResp {
            resp,
            events,
            prevs,
            source,
        })
    }

    /// A final response carrying only an error status.
    fn status(status: c_int) -> Box<OwnedResp> {
        OwnedResp::new(status, WatchResponse::default())
    }
}

/// Options of a watch (etcd's WatchCreateRequest). All-zero means the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct etch_watch_opts {
    /// First revision to deliver (history is replayed from it); 0 for "changes after now";
    /// negative is ETCH_INVALID. A replay ends with a response that has caught_up = 1.
    pub start_revision: i64,
    /// Non-zero: include each event's previous key-value.
    pub prev_kv: c_int,
    /// Non-zero: leave out puts.
    pub no_put: c_int,
    /// Non-zero: leave out deletes.
    pub no_delete: c_int,
    /// If non-zero, send a response with no events (a progress notification) after this many
    /// milliseconds without one.
    pub progress_notify_ms: u64,
}

/// A callback receiving watch responses on a library thread. `ctx` is the pointer given to
/// etch_watch_start(); `resp` is valid only during the call. It must not call
/// etch_watch_poll() on its own watch; it may call etch_watch_close() on it (the watch then
/// stops after the callback returns) and any function on the etch_db.
pub type etch_watch_cb =
    Option<unsafe extern "C" fn(ctx: *mut c_void, resp: *const etch_watch_resp)>;

/// A watch. Opaque; created by etch_watch_open() (polling) or etch_watch_start() (callback),
/// released by etch_watch_close(). It keeps the store's data reachable, so it may outlive
/// etch_close() of its handle (then it reports ETCH_CLOSED). Thread safety: a polling watch is
/// not for concurrent use (one thread polls at a time; it may be moved between threads); a
/// callback watch is only closed.
pub struct etch_watch {
    mode: Mode,
}

enum Mode {
    Poll {
        watcher: AnyWatcher,
        ended: bool,
    },
    Thread {
        stop: Arc<AtomicBool>,
        /// Wakes the watch thread if it is waiting for changes, so closing never waits for
        /// the end of its wait slice (a remote watch has none: closing waits for the slice).
        canceller: Option<WatchCanceller>,
        thread: Option<JoinHandle<()>>,
    },
}

/// The backend's watcher for C arguments.
///
/// # Safety
/// Pointers as in etch_watch_open().
unsafe fn engine_watcher(
    db: &etch_db,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    opts: *const etch_watch_opts,
) -> FfiResult<AnyWatcher> {
    // SAFETY: the caller's guarantee: key buffers NULL or valid, opts NULL or readable.
    let (range, opts) = unsafe {
        (
            raw_range(key, key_len, range_end, range_end_len)?,
            opts.as_ref().copied().unwrap_or_default(),
        )
    };
    if range.start().is_empty() {
        return Err(Failure::invalid("key is empty (use \"\\0\" for every key)"));
    }
    let options = WatchOptions {
        start_revision: boundary::revision(opts.start_revision, "start_revision")?,
        prev_kv: flag(opts.prev_kv),
        no_put: flag(opts.no_put),
        no_delete: flag(opts.no_delete),
        progress_notify: (opts.progress_notify_ms != 0)
            .then(|| Duration::from_millis(opts.progress_notify_ms)),
    };
    db.store.watch_with(range, options)
}

/// Starts a polling watch on the range `(key, range_end)` (as etch_range(); key `"\0"` with
/// range_end `"\0"` watches every key). `opts` may be NULL. On ETCH_OK `*watch` receives the
/// watch, owned by the caller (etch_watch_close()); on failure it is NULL. Read responses with
/// etch_watch_poll(). Returns ETCH_OK, ETCH_INVALID. May run concurrently with any call on the
/// handle except etch_close().
#[no_mangle]
pub unsafe extern "C" fn etch_watch_open(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    opts: *const etch_watch_opts,
    watch: *mut *mut etch_watch,
) -> c_int {
    // SAFETY: by the header's contract `watch` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(watch) };
    call_db(db, |db| {
        // SAFETY: by the header's contract watch is writable; the other pointers are checked
        // by engine_watcher under the same contract.
        let (watch, watcher) = unsafe {
            let watch = out(watch, "watch")?;
            watch.set(std::ptr::null_mut());
            (
                watch,
                engine_watcher(db, key, key_len, range_end, range_end_len, opts)?,
            )
        };
        let mode = Mode::Poll {
            watcher,
            ended: false,
        };
        watch.set(Box::into_raw(Box::new(etch_watch { mode })));
        Ok(())
    })
}

/// Waits up to `timeout_ms` milliseconds (0: just check) for the next response of a polling
/// watch. On ETCH_OK `*resp` receives it, owned by the caller (etch_watch_resp_free()).
/// Otherwise `*resp` is NULL and the code says why: ETCH_NOT_FOUND (nothing within the
/// timeout), ETCH_CLOSED (the watch ended: after a canceled response, or the store was
/// closed), ETCH_INVALID (NULL arguments, negative timeout, a callback watch), or an I/O code.
#[no_mangle]
pub unsafe extern "C" fn etch_watch_poll(
    watch: *mut etch_watch,
    timeout_ms: i64,
    resp: *mut *mut etch_watch_resp,
) -> c_int {
    // SAFETY: by the header's contract `resp` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(resp) };
    call(|| {
        // SAFETY: by the header's contract watch is live and not used concurrently; resp is
        // writable.
        let (w, resp) = unsafe {
            let resp = out(resp, "resp")?;
            resp.set(std::ptr::null_mut());
            (object_mut(watch, "watch")?, resp)
        };
        let Mode::Poll { watcher, ended } = &mut w.mode else {
            return Err(Failure::invalid(
                "watch delivers to a callback; it cannot be polled",
            ));
        };
        if timeout_ms < 0 {
            return Err(Failure::invalid(format!(
                "timeout_ms {timeout_ms} is negative"
            )));
        }
        if *ended {
            return Err(Failure::new(ETCH_CLOSED, "watch has ended"));
        }
        match watcher.recv_timeout(Duration::from_millis(timeout_ms as u64)) {
            Ok(Some(r)) => {
                *ended = r.canceled;
                resp.set(Box::into_raw(OwnedResp::new(ETCH_OK, r)).cast());
                Ok(())
            }
            Ok(None) => Err(Failure::not_found("no watch response within the timeout")),
            Err(e) => {
                *ended = true;
                Err(e)
            }
        }
    })
}

/// Releases a response returned by etch_watch_poll() (exactly once). NULL is a no-op. Never
/// pass the response a callback receives.
#[no_mangle]
pub unsafe extern "C" fn etch_watch_resp_free(resp: *mut etch_watch_resp) {
    if resp.is_null() {
        return;
    }
    // SAFETY: by the header's contract resp came from etch_watch_poll, which leaked a
    // Box<OwnedResp>; OwnedResp is repr(C) with the response first, so the cast recovers that
    // allocation, freed once.
    drop(unsafe { Box::from_raw(resp.cast::<OwnedResp>()) });
}

/// The callback and its context, moved to the watch thread.
struct Callback {
    cb: unsafe extern "C" fn(*mut c_void, *const etch_watch_resp),
    ctx: *mut c_void,
}

// SAFETY: the header requires that `ctx` may be used from the library's watch thread (the
// caller guarantees whatever synchronisation its data needs); the function pointer is plain
// code. The Callback is used by that one thread only.
unsafe impl Send for Callback {}

impl Callback {
    fn deliver(&self, resp: &OwnedResp) {
        // SAFETY: cb is the caller's non-NULL callback; resp is a valid response borrowed for
        // the whole call, so every pointer in it stays valid until the callback returns.
        unsafe { (self.cb)(self.ctx, &resp.resp) };
    }
}

/// The watch thread: delivers responses until stopped, cancelled or failed. etch_watch_close()
/// sets `stop` and wakes the wait through the watch's canceller; the wait is cut into 50 ms
/// slices only so that etch_close() of the store is noticed too.
fn run_watch(mut watcher: AnyWatcher, callback: Callback, stop: Arc<AtomicBool>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        if stop.load(Ordering::Acquire) {
            return None;
        }
        match watcher.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(r)) => {
                let canceled = r.canceled;
                callback.deliver(&OwnedResp::new(ETCH_OK, r));
                if canceled {
                    return None;
                }
            }
            Ok(None) => {}
            Err(e) => return Some(e.code),
        }
    }));
    let status = match outcome {
        Ok(status) => status,
        Err(_) => Some(ETCH_INTERNAL),
    };
    if let Some(status) = status {
        if !stop.load(Ordering::Acquire) {
            callback.deliver(&OwnedResp::status(status));
        }
    }
}

/// Starts a watch on `(key, range_end)` that calls `cb(ctx, resp)` for every response, on a
/// thread the library creates for this watch (one at a time, in order). `opts` may be NULL.
/// `ctx` is passed through untouched; it must stay valid, and be safe to use from that
/// thread, until etch_watch_close() returns. If the watch is cancelled (compaction) the last
/// call has canceled = 1; if it fails (e.g. ETCH_CLOSED after etch_close()) the last call has
/// that status. On ETCH_OK `*watch` receives the watch, owned by the caller
/// (etch_watch_close()). Returns ETCH_OK, ETCH_INVALID (NULL cb, NULL watch, empty key) or
/// ETCH_INTERNAL (the thread could not be created).
#[no_mangle]
pub unsafe extern "C" fn etch_watch_start(
    db: *const etch_db,
    key: *const u8,
    key_len: usize,
    range_end: *const u8,
    range_end_len: usize,
    opts: *const etch_watch_opts,
    cb: etch_watch_cb,
    ctx: *mut c_void,
    watch: *mut *mut etch_watch,
) -> c_int {
    // SAFETY: by the header's contract `watch` is NULL or writable; cleared first so that
    // every failure, a NULL handle included, leaves NULL there.
    unsafe { clear(watch) };
    call_db(db, |db| {
        // SAFETY: by the header's contract watch is writable; the other pointers are checked
        // by engine_watcher under the same contract.
        let (watch, watcher) = unsafe {
            let watch = out(watch, "watch")?;
            watch.set(std::ptr::null_mut());
            (
                watch,
                engine_watcher(db, key, key_len, range_end, range_end_len, opts)?,
            )
        };
        let cb = cb.ok_or_else(|| Failure::invalid("cb is NULL"))?;
        let canceller = watcher.canceller();
        let stop = Arc::new(AtomicBool::new(false));
        let callback = Callback { cb, ctx };
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("etch-watch".into())
            .spawn(move || run_watch(watcher, callback, thread_stop))
            .map_err(|e| Failure::new(ETCH_INTERNAL, format!("cannot start watch thread: {e}")))?;
        let mode = Mode::Thread {
            stop,
            canceller,
            thread: Some(thread),
        };
        watch.set(Box::into_raw(Box::new(etch_watch { mode })));
        Ok(())
    })
}

/// Stops and releases a watch (exactly once). For a callback watch: no callback starts after
/// this returns, and it waits for a running one to finish (from inside the callback itself it
/// does not wait; the watch stops when the callback returns). NULL is a no-op returning
/// ETCH_OK. Returns ETCH_OK, or ETCH_INTERNAL if the watch thread had panicked.
#[no_mangle]
pub unsafe extern "C" fn etch_watch_close(watch: *mut etch_watch) -> c_int {
    if watch.is_null() {
        return ETCH_OK;
    }
    call(|| {
        // SAFETY: by the header's contract watch came from etch_watch_open/etch_watch_start (a
        // leaked Box), is closed once, and is not being polled concurrently.
        let w = unsafe { Box::from_raw(watch) };
        if let Mode::Thread {
            stop,
            canceller,
            mut thread,
        } = w.mode
        {
            stop.store(true, Ordering::Release);
            if let Some(c) = canceller {
                c.cancel();
            }
            if let Some(t) = thread.take() {
                if t.thread().id() != std::thread::current().id() && t.join().is_err() {
                    return Err(Failure::new(ETCH_INTERNAL, "watch thread panicked"));
                }
            }
        }
        Ok(())
    })
}
