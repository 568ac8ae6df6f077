//! Builds `libetch.a` / `libetch.so`, compiles the C test programs in `tests/c/` and the
//! example in `examples/` with the system C compiler, and runs them — under valgrind when it is
//! installed (zero errors and zero definite or indirect leaks required).
//!
//! The core programs (test_kv, test_txn, test_watch, test_lease) run three times, on each
//! backend of an `etch_db *` (see `tests/c/check.h`): a local file, a follower of a 3-member
//! cluster in the program's process, and a remote `etch serve` this harness starts in its own
//! process on a loopback port. On the member and remote backends only test_kv runs under
//! valgrind; the others exercise the same handle code and run natively, since a member's
//! runtime and QUIC stack, or tonic, are many times slower under valgrind.
//!
//! Environment: `CC` picks the compiler (default `cc`); `ETCH_VALGRIND=0` runs without
//! valgrind even when it is installed.

#[path = "c_suite/out_params.rs"]
mod out_params;

#[path = "../../client/tests/support/serve.rs"]
mod serve;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Directory holding the cargo-built `libetch.a` and `libetch.so` of this profile.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is target/<profile>/deps/c_suite-<hash>; the libraries are uplifted
        // into target/<profile>/.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        // `cargo test` does not build a cdylib/staticlib-only lib target for integration
        // tests, so build it here (cargo does not hold its build lock while tests run). The
        // whole workspace with all targets, not `-p etch-ffi` alone: features are unified
        // per cargo invocation, and the library alone would need tokio, tonic, quinn and
        // openraft compiled again with other features; after `cargo test --workspace` this
        // finds everything fresh.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--all-targets"]);
        // Run it in the environment `cargo test` was started from. Cargo gives this test
        // process CARGO_PKG_NAME, CARGO_MANIFEST_DIR and the like, and ring's build script
        // declares `rerun-if-env-changed` on exactly those: with them set, the inner cargo
        // reruns ring's build script, and rebuilds ring and everything above it (rustls,
        // quinn, tonic, every test target), about 12 minutes on 2 cores.
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            let set_by_cargo_for_this_test = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix));
            if set_by_cargo_for_this_test {
                cmd.env_remove(key);
            }
        }
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build -p etch-ffi --lib failed");
        assert!(
            dir.join("libetch.a").exists(),
            "no libetch.a in {}",
            dir.display()
        );
        dir
    })
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// Compiles `source` against the static library into `exe`.
fn compile_static(source: &Path, exe: &Path) {
    let lib = lib_dir().join("libetch.a");
    run(
        Command::new(compiler())
            .args(["-std=c11", "-D_DEFAULT_SOURCE", "-g", "-O1", "-pthread"])
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(manifest_dir().join("include"))
            .arg("-I")
            .arg(manifest_dir().join("tests/c"))
            .arg(source)
            .arg(&lib)
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(exe),
        &format!("compiling {}", source.display()),
    );
}

/// Whether `tool` runs. A missing tool fails the test when `ETCH_REQUIRE_TOOLS` is set (as CI
/// does), so a CI machine without it cannot pass by skipping.
fn tool_installed(tool: &str) -> bool {
    let installed = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed || std::env::var_os("ETCH_REQUIRE_TOOLS").is_none(),
        "{tool} is required (ETCH_REQUIRE_TOOLS is set) but not installed"
    );
    installed
}

fn valgrind_wanted() -> bool {
    if std::env::var("ETCH_VALGRIND").is_ok_and(|v| v == "0") {
        return false;
    }
    let installed = tool_installed("valgrind");
    if !installed {
        eprintln!("valgrind is not installed: running the C programs without it");
    }
    installed
}

/// Runs a compiled program with a scratch directory argument, under valgrind if available.
///
/// Leak policy: definite and indirect leaks are errors (memory the program lost track of);
/// "still reachable" blocks (Rust's thread-local and runtime data alive at exit) and
/// "possibly lost" ones (interior pointers into live allocations, as thread bookkeeping of
/// the standard library) are reported by valgrind but not errors.
fn run_program(exe: &Path, scratch: &Path) -> String {
    run_program_with(exe, scratch, &[])
}

/// [`run_program`] with environment variables.
fn run_program_with(exe: &Path, scratch: &Path, env: &[(&str, String)]) -> String {
    run_program_as(exe, scratch, env, true)
}

/// [`run_program_with`], under valgrind only if `valgrind` (and valgrind is wanted).
fn run_program_as(exe: &Path, scratch: &Path, env: &[(&str, String)], valgrind: bool) -> String {
    let what = format!("running {}", exe.display());
    let env = env.iter().map(|(k, v)| (*k, v.as_str()));
    if valgrind && valgrind_wanted() {
        run(
            Command::new("valgrind")
                .envs(env)
                .args([
                    "--quiet",
                    "--error-exitcode=99",
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect",
                    "--show-leak-kinds=definite,indirect",
                ])
                .arg(exe)
                .arg(scratch),
            &format!("{what} under valgrind"),
        )
    } else {
        run(Command::new(exe).envs(env).arg(scratch), &what)
    }
}

/// Compiles and runs `tests/c/<name>.c`.
fn c_test(name: &str) {
    c_test_on(name, Backend::Local);
}

/// What the handle of a core program talks to (`ETCH_TEST_BACKEND`).
#[derive(Clone, Copy, Debug)]
enum Backend {
    Local,
    Member,
    Remote,
}

/// Compiles `tests/c/<name>.c` and runs it on `backend` (for `Remote`, against an `etch serve`
/// started here and stopped, its file checked, afterwards).
fn c_test_on(name: &str, backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = tmp.path().join(name);
    compile_static(&manifest_dir().join(format!("tests/c/{name}.c")), &exe);
    let scratch = tmp.path().join("data");
    std::fs::create_dir(&scratch).unwrap();
    let mut env = Vec::new();
    let mut server = None;
    match backend {
        Backend::Local => env.push(("ETCH_TEST_BACKEND", "local".to_string())),
        Backend::Member => env.push(("ETCH_TEST_BACKEND", "member".to_string())),
        Backend::Remote => {
            let served = serve::Served::start(&tmp.path().join("served.etch"));
            env.push(("ETCH_TEST_BACKEND", "remote".to_string()));
            env.push(("ETCH_TEST_ENDPOINT", served.endpoint()));
            server = Some(served);
        }
    }
    // Under valgrind a member (a tokio runtime, QUIC, two more members in the process) and a
    // remote handle (tonic) run many times slower; their code paths under the C API are the
    // same for every program, so test_kv checks them under valgrind and the others run natively.
    let valgrind = matches!(backend, Backend::Local) || name == "test_kv";
    let out = run_program_as(&exe, &scratch, &env, valgrind);
    assert!(
        out.contains(&format!("{name}: ok")),
        "{name} on {backend:?} printed: {out}"
    );
    if let Some(mut served) = server {
        served.stop();
        let db = etch_engine::Store::open(&served.db).expect("the served file opens");
        db.check().expect("the served file is intact");
    }
}

#[test]
fn c_kv() {
    c_test("test_kv");
}

#[test]
fn c_kv_member() {
    c_test_on("test_kv", Backend::Member);
}

#[test]
fn c_kv_remote() {
    c_test_on("test_kv", Backend::Remote);
}

#[test]
fn c_txn() {
    c_test("test_txn");
}

#[test]
fn c_txn_member() {
    c_test_on("test_txn", Backend::Member);
}

#[test]
fn c_txn_remote() {
    c_test_on("test_txn", Backend::Remote);
}

#[test]
fn c_watch() {
    c_test("test_watch");
}

#[test]
fn c_watch_member() {
    c_test_on("test_watch", Backend::Member);
}

#[test]
fn c_watch_remote() {
    c_test_on("test_watch", Backend::Remote);
}

#[test]
fn c_lease() {
    c_test("test_lease");
}

#[test]
fn c_lease_member() {
    c_test_on("test_lease", Backend::Member);
}

#[test]
fn c_lease_remote() {
    c_test_on("test_lease", Backend::Remote);
}

#[test]
fn c_threads() {
    c_test("test_threads");
}

#[test]
fn c_errors() {
    c_test("test_errors");
}

/// The example a C user copies: linked dynamically against libetch.so (rpath), run.
#[test]
fn c_example_quickstart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = tmp.path().join("quickstart");
    let lib = lib_dir();
    run(
        Command::new(compiler())
            .args(["-std=c11", "-D_DEFAULT_SOURCE", "-g", "-O1", "-pthread"])
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(manifest_dir().join("include"))
            .arg(manifest_dir().join("examples/quickstart.c"))
            .arg("-L")
            .arg(lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .args(["-letch", "-o"])
            .arg(&exe),
        "compiling examples/quickstart.c",
    );
    let out = run_program(&exe, &tmp.path().join("quickstart.etch"));
    for want in [
        "config/mode = safe (version 2",
        "it was fast",
        "svc/api/1 = 10.0.0.2",
        "became leader: yes",
        "svc/api/2 after revoking its lease: gone",
        "watch saw 4 events",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// ffi/install.sh lays out header, libraries and etch.pc; pkg-config then gives working flags.
#[test]
fn install_script_and_pkg_config() {
    if !tool_installed("pkg-config") {
        eprintln!("skipped: pkg-config is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = tmp.path().join("prefix");
    run(
        Command::new("bash")
            .arg(manifest_dir().join("install.sh"))
            .arg(&prefix)
            .env("TARGET_DIR", lib_dir()),
        "ffi/install.sh",
    );
    let pc_dir = prefix.join("lib/pkgconfig");
    let flags = run(
        Command::new("pkg-config")
            .args(["--cflags", "--libs", "etch"])
            .env("PKG_CONFIG_PATH", &pc_dir),
        "pkg-config",
    );
    let version = run(
        Command::new("pkg-config")
            .args(["--modversion", "etch"])
            .env("PKG_CONFIG_PATH", &pc_dir),
        "pkg-config --modversion",
    );
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let exe = tmp.path().join("quickstart");
    run(
        Command::new(compiler())
            .arg(manifest_dir().join("examples/quickstart.c"))
            .args(flags.split_whitespace())
            .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
            .arg("-o")
            .arg(&exe),
        "compiling with pkg-config flags",
    );
    let out = run(
        Command::new(&exe).arg(tmp.path().join("q.etch")),
        "quickstart via pkg-config",
    );
    assert!(out.contains("became leader: yes"), "{out}");
}

/// The header stands alone in strict C99 and in C++.
#[test]
fn header_compiles_standalone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("only_header.c");
    std::fs::write(
        &src,
        "#include \"etch.h\"\nint main(void) { return ETCH_OK; }\n",
    )
    .unwrap();
    let include = manifest_dir().join("include");
    run(
        Command::new(compiler())
            .args([
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
            ])
            .arg("-I")
            .arg(&include)
            .arg(&src),
        "header as C99",
    );
    if Command::new("c++").arg("--version").output().is_ok() {
        run(
            Command::new("c++")
                .args([
                    "-x",
                    "c++",
                    "-std=c++11",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                ])
                .arg("-fsyntax-only")
                .arg("-I")
                .arg(&include)
                .arg(&src),
            "header as C++",
        );
    }
}

#[test]
fn c_write() {
    c_test("test_write");
}

#[test]
fn c_open_options() {
    c_test("test_open");
}

#[test]
fn c_edges() {
    c_test("test_edges");
}

/// The C program generated from the header: every object out-parameter of every function is
/// NULL after every failed call (see `c_suite/out_params.rs`).
#[test]
fn c_out_params_are_null_after_every_failure() {
    let header = std::fs::read_to_string(manifest_dir().join("include/etch.h")).unwrap();
    let (program, checked) = out_params::program(&header);
    for name in [
        "etch_open",
        "etch_restore",
        "etch_get",
        "etch_range",
        "etch_put",
        "etch_delete_range",
        "etch_txn_new",
        "etch_txn_commit",
        "etch_txn_result_kvs",
        "etch_txn_result_nested",
        "etch_watch_open",
        "etch_watch_start",
        "etch_watch_poll",
        "etch_lease_list",
        "etch_lease_time_to_live",
        "etch_iter_next",
        "etch_wtxn_get",
        "etch_wtxn_range",
    ] {
        assert!(
            checked.iter().any(|c| c == name),
            "{name} not found in the header"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("out_params.c");
    std::fs::write(&source, program).unwrap();
    let exe = tmp.path().join("out_params");
    compile_static(&source, &exe);
    let scratch = tmp.path().join("data");
    std::fs::create_dir(&scratch).unwrap();
    let out = run_program(&exe, &scratch);
    assert!(out.contains("out_params: ok"), "printed: {out}");
}

/// What a C user's CI runs: open, get, close under valgrind's default leak rules (possibly
/// lost blocks are errors too), with no suppression file.
#[test]
fn c_open_get_close_is_clean_under_strict_valgrind() {
    if !tool_installed("valgrind") {
        eprintln!("skipped: valgrind is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("three_calls.c");
    std::fs::write(
        &source,
        r#"#include <stdio.h>
#include "etch.h"
int main(int argc, char **argv) {
    etch_db *db = NULL;
    etch_kv *kv = NULL;
    if (argc != 2 || etch_open(argv[1], NULL, &db) != ETCH_OK) return 2;
    int rc = etch_get(db, (const uint8_t *)"k", 1, &kv);
    etch_kv_free(kv);
    if (rc != ETCH_NOT_FOUND) return 3;
    return etch_close(db) == ETCH_OK ? 0 : 4;
}
"#,
    )
    .unwrap();
    let exe = tmp.path().join("three_calls");
    compile_static(&source, &exe);
    let out = Command::new("valgrind")
        .args(["--leak-check=full", "--error-exitcode=1"])
        .arg(&exe)
        .arg(tmp.path().join("three.etch"))
        .output()
        .expect("run valgrind");
    assert!(
        out.status.success(),
        "valgrind failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
