//! The command line as a whole: help with an example on every command, completion scripts,
//! version, and exit codes of argument errors.

use crate::common;

use common::Env;

const COMMANDS: &[&[&str]] = &[
    &["put"],
    &["get"],
    &["del"],
    &["txn"],
    &["watch"],
    &["lease"],
    &["lease", "grant"],
    &["lease", "revoke"],
    &["lease", "timetolive"],
    &["lease", "list"],
    &["lease", "keep-alive"],
    &["compaction"],
    &["defrag"],
    &["snapshot"],
    &["snapshot", "save"],
    &["snapshot", "restore"],
    &["snapshot", "status"],
    &["status"],
    &["endpoint", "status"],
    &["check"],
    &["lock"],
    &["elect"],
    &["import"],
    &["export"],
    &["completion"],
];

#[test]
fn every_command_has_help_with_an_example() {
    let e = Env::new();
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = e.ok(&args);
        assert!(out.contains("Usage: etch"), "{cmd:?}: {out}");
        assert!(out.contains("Example"), "{cmd:?} has no example: {out}");
        let example = format!("etch {}", cmd.join(" "));
        assert!(out.contains(&example), "{cmd:?}: no `{example}` in {out}");
    }
    let top = e.ok(&["--help"]);
    for word in ["Exit codes", "128", "base64", "decimal strings"] {
        assert!(top.contains(word), "top-level help lacks {word}");
    }
    assert!(e.ok(&["watch", "--help"]).contains("locked"));
    assert!(!e.db.exists(), "help must not create the database");
}

#[test]
fn completion_scripts_for_bash_zsh_fish() {
    let e = Env::new();
    assert!(e.ok(&["completion", "bash"]).contains("complete -F _etch"));
    assert!(e.ok(&["completion", "zsh"]).starts_with("#compdef etch"));
    assert!(e.ok(&["completion", "fish"]).contains("complete -c etch"));
    e.fails(&["completion", "tcsh"], 128);
}

#[test]
fn version_and_argument_errors() {
    let e = Env::new();
    assert!(e.ok(&["--version"]).starts_with("etch "));
    e.fails(&[], 128);
    e.fails(&["--no-such-flag", "status"], 128);
    e.fails(&["lease"], 128);
    e.fails(&["get"], 128);
}
