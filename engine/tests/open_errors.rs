//! Errors from opening a store name the file and the step that failed (issue 12, item 3):
//! `Error::Open { path, action, source }`, or `Error::NoSpace` with both in its message.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use etch_engine::sim::{Fault, SimDisk};
use etch_engine::storage::{FsStorage, Storage, StorageFile};
use etch_engine::{Error, OpenAction, Options, Store};

/// Asserts an `Error::Open` naming `path` and `action` with a source of `kind`, and that its
/// message says all three.
fn assert_open_error<T>(
    r: etch_engine::Result<T>,
    path: &Path,
    action: OpenAction,
    kind: io::ErrorKind,
) {
    match r.err() {
        Some(e @ Error::Open { .. }) => {
            let msg = e.to_string();
            let Error::Open {
                path: p,
                action: a,
                source,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(p, path, "{msg}");
            assert_eq!(a, action, "{msg}");
            assert_eq!(source.kind(), kind, "{msg}");
            assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
            assert!(msg.contains(&action.to_string()), "{msg}");
            assert!(msg.contains(&source.to_string()), "{msg}");
        }
        other => panic!("expected Error::Open ({action:?}, {kind:?}), got {other:?}"),
    }
}

#[test]
fn a_directory_given_as_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a-directory");
    std::fs::create_dir(&path).unwrap();
    assert_open_error(
        Store::open(&path),
        &path,
        OpenAction::OpenFile,
        io::ErrorKind::IsADirectory,
    );
    assert_open_error(
        Options::new().read_only(true).open(&path),
        &path,
        OpenAction::OpenFileReadOnly,
        io::ErrorKind::IsADirectory,
    );
}

#[test]
fn a_missing_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("db.etch");
    assert_open_error(
        Store::open(&path),
        &path,
        OpenAction::CreateFile,
        io::ErrorKind::NotFound,
    );
    let msg = Store::open(&path).err().unwrap().to_string();
    assert!(msg.contains("does its directory exist"), "{msg}");
    assert!(!dir.path().join("no-such-dir").exists());
}

#[test]
fn an_unreadable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("locked-out");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("db.etch");
    Store::open(&path).unwrap().close().unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o000)).unwrap();
    let denied = std::fs::File::open(&path).is_err();
    let result = Store::open(&path);
    let ro_result = Options::new().read_only(true).open(&path);
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !denied {
        // Root ignores permission bits; `denied_by_the_storage` covers this case below.
        eprintln!("skipped: running as root, a mode-000 directory does not deny access");
        return;
    }
    assert_open_error(
        result,
        &path,
        OpenAction::OpenFile,
        io::ErrorKind::PermissionDenied,
    );
    assert_open_error(
        ro_result,
        &path,
        OpenAction::OpenFileReadOnly,
        io::ErrorKind::PermissionDenied,
    );
}

/// A storage that refuses to open anything with `EACCES`, as an unreadable directory does for
/// a process that is not root.
struct Denying;

impl Storage for Denying {
    fn open(&self, _path: &Path, _create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Err(io::Error::from_raw_os_error(13))
    }

    fn open_read_only(&self, _path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Err(io::Error::from_raw_os_error(13))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        FsStorage.remove(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        FsStorage.sync_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsStorage.rename(from, to)
    }
}

#[test]
fn denied_by_the_storage() {
    let path = Path::new("/somewhere/db.etch");
    assert_open_error(
        Options::new().storage(Arc::new(Denying)).open(path),
        path,
        OpenAction::OpenFile,
        io::ErrorKind::PermissionDenied,
    );
    assert_open_error(
        Options::new()
            .storage(Arc::new(Denying))
            .read_only(true)
            .open(path),
        path,
        OpenAction::OpenFileReadOnly,
        io::ErrorKind::PermissionDenied,
    );
}

#[test]
fn a_directory_where_the_wal_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    Store::open(&path).unwrap().close().unwrap();
    let wal = dir.path().join("db.etch-wal");
    std::fs::create_dir(&wal).unwrap();
    assert_open_error(
        Store::open(&path),
        &wal,
        OpenAction::ReadWal,
        io::ErrorKind::IsADirectory,
    );
    assert_open_error(
        Options::new().read_only(true).open(&path),
        &wal,
        OpenAction::ReadWal,
        io::ErrorKind::IsADirectory,
    );
    // The refused opens left the lock free.
    std::fs::remove_dir(&wal).unwrap();
    Store::open(&path).unwrap().close().unwrap();
}

#[test]
fn a_full_disk_is_no_space_naming_the_file() {
    // The mutating calls of a first open: create the file, then write its first pages.
    for (op, action) in [(1, OpenAction::OpenFile), (2, OpenAction::InitFile)] {
        let dir = tempfile::tempdir().unwrap();
        let disk = SimDisk::new(dir.path());
        disk.fail_op(op, Fault::NoSpace);
        match Options::new().storage(Arc::new(disk)).open("db.etch").err() {
            Some(Error::NoSpace(e)) => {
                let msg = e.to_string();
                assert!(msg.starts_with("db.etch: "), "{msg}");
                assert!(msg.contains(&action.to_string()), "{msg}");
                assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{msg}");
            }
            other => panic!("ENOSPC at mutating call {op}: expected NoSpace, got {other:?}"),
        }
    }
}

#[test]
fn garbage_is_still_not_an_etch_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
    for read_only in [false, true] {
        match Options::new().read_only(read_only).open(&path).err() {
            Some(Error::NotEtchFile { path: p }) => assert_eq!(p, path),
            other => panic!("read_only={read_only}: {other:?}"),
        }
    }
}
