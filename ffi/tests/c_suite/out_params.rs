//! Generates a C program from `include/etch.h` that checks the header's promise for object
//! out-parameters: after every failed call each `T **` argument holds NULL, never what was
//! there before (the program pre-fills them with a non-NULL sentinel).
//!
//! Every function of the header with a `T **` parameter is called three ways: with every
//! handle NULL; with live handles and every other argument zero/NULL (empty keys, index 0,
//! NULL callbacks); with live handles and every key buffer longer than max_key_size. A call
//! that succeeds must be one known to have no failure path with those arguments, and what it
//! returned is released with the function the header's ownership table names for its type, so
//! the program also runs clean under valgrind. Functions on an `etch_wtxn` run inside an
//! etch_write() callback, the only place one exists.

use std::fmt::Write as _;

/// A parameter of a C prototype.
#[derive(Debug)]
struct Param {
    /// The type as written, without the name (`const struct etch_kv **`).
    ty: String,
    name: String,
}

impl Param {
    fn stars(&self) -> usize {
        self.ty.matches('*').count()
    }

    /// The pointee's struct name for `struct etch_x *` / `struct etch_x **`.
    fn struct_name(&self) -> Option<&str> {
        let rest = self.ty.split("struct ").nth(1)?;
        Some(rest.trim_end_matches(['*', ' ']).trim())
    }
}

/// A prototype of the header.
#[derive(Debug)]
struct Function {
    name: String,
    params: Vec<Param>,
}

/// Every `int etch_...(...);` prototype of the header.
fn prototypes(header: &str) -> Vec<Function> {
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(at) = rest.find("\nint etch_") {
        rest = &rest[at + 5..];
        let open = rest.find('(').expect("prototype has (");
        let close = rest.find(");").expect("prototype ends with );");
        let name = rest[..open].trim().to_string();
        let params = rest[open + 1..close]
            .split(',')
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| p != "void")
            .map(|p| {
                let split = p.rfind([' ', '*']).expect("parameter has a name") + 1;
                Param {
                    ty: p[..split].trim().to_string(),
                    name: p[split..].to_string(),
                }
            })
            .collect();
        out.push(Function { name, params });
        rest = &rest[close..];
    }
    out
}

/// The release function of each object type, from the preamble's ownership table
/// (` *   etch_kv (owned)       etch_kv_free()   ...`).
fn release_functions(header: &str) -> Vec<(String, String)> {
    let table = header
        .split("Ownership.")
        .nth(1)
        .expect("the preamble has an Ownership paragraph")
        .split("\n *\n")
        .next()
        .unwrap();
    table
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line
                .trim_start_matches([' ', '*'])
                .split_whitespace()
                .collect();
            let ty = words.first().filter(|w| w.starts_with("etch_"))?;
            let free = words
                .iter()
                .skip(1)
                .find(|w| w.starts_with("etch_") && w.ends_with("()"))?;
            Some((ty.to_string(), free.trim_end_matches("()").to_string()))
        })
        .collect()
}

/// Handles the program keeps live for the second and third calls.
const HANDLES: [&str; 6] = [
    "etch_db",
    "etch_iter",
    "etch_txn",
    "etch_txn_result",
    "etch_watch",
    "etch_wtxn",
];

/// Whether `name` may succeed in `pass`: only where no failure path applies. A new
/// transaction cannot fail; an empty transaction commits; an empty store lists its leases; a
/// range bound may be longer than max_key_size (a range from a long key still holds shorter
/// ones), so range reads, deletes and watches from one are valid.
fn may_succeed(name: &str, pass: Pass) -> bool {
    match pass {
        Pass::NullHandles => name == "etch_txn_new",
        Pass::EmptyArguments => {
            ["etch_txn_new", "etch_txn_commit", "etch_lease_list"].contains(&name)
        }
        Pass::LongKeys => [
            "etch_txn_new",
            "etch_txn_commit",
            "etch_lease_list",
            "etch_range",
            "etch_wtxn_range",
            "etch_delete_range",
            "etch_watch_open",
        ]
        .contains(&name),
    }
}

/// How a call's arguments are made.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    NullHandles,
    EmptyArguments,
    LongKeys,
}

/// Length of the key buffers of the third pass: over the default max_key_size of 960.
const LONG: usize = 2000;

/// One call: argument list, checks, releases.
fn call(f: &Function, pass: Pass, releases: &[(String, String)], id: usize) -> String {
    let mut decls = String::new();
    let mut args = Vec::new();
    let mut outs = Vec::new();
    let mut after_bytes = false;
    for p in &f.params {
        let is_bytes = p.ty == "const uint8_t *";
        if p.stars() == 2 {
            let var = format!("out{id}_{}", p.name);
            let pointee = p.ty.trim_end_matches('*').trim_end();
            writeln!(decls, "    {pointee} *{var} = ({pointee} *)(uintptr_t)0x1;").unwrap();
            args.push(format!("&{var}"));
            outs.push((var, p));
        } else if let Some(handle) = p
            .struct_name()
            .filter(|s| p.stars() == 1 && HANDLES.contains(s))
        {
            args.push(if pass == Pass::NullHandles {
                "NULL".into()
            } else {
                format!("live_{}", handle.trim_start_matches("etch_"))
            });
        } else if is_bytes && pass == Pass::LongKeys {
            args.push("long_key".into());
        } else if p.ty == "size_t" && after_bytes && pass == Pass::LongKeys {
            args.push(LONG.to_string());
        } else if p.stars() >= 1 || p.ty.ends_with("_fn") || p.ty.ends_with("_cb") {
            args.push("NULL".into());
        } else {
            args.push("0".into());
        }
        after_bytes = is_bytes;
    }
    let mut code = format!("    {{\n{decls}");
    writeln!(code, "        int rc = {}({});", f.name, args.join(", ")).unwrap();
    let where_ = format!("{} (pass {})", f.name, pass as u8 + 1);
    let may_succeed = may_succeed(&f.name, pass);
    writeln!(code, "        calls++;").unwrap();
    writeln!(code, "        if (rc == ETCH_OK) {{").unwrap();
    if may_succeed {
        for (var, p) in &outs {
            let ty = p.struct_name().expect("out-parameter of a struct type");
            if p.ty.starts_with("const ") {
                continue; // borrowed from its owner
            }
            let free = releases
                .iter()
                .find(|(t, _)| t == ty)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| panic!("no release function for {ty} in the header"));
            writeln!(code, "            {free}({var});").unwrap();
        }
    } else {
        writeln!(
            code,
            "            fprintf(stderr, \"{where_} unexpectedly succeeded\\n\");\n            exit(1);"
        )
        .unwrap();
    }
    writeln!(code, "        }} else {{").unwrap();
    for (var, _) in &outs {
        writeln!(
            code,
            "            if ({var} != NULL) {{\n                fprintf(stderr, \"{where_}: \
             returned %d (%s) but left {var} non-NULL\\n\", rc, etch_strerror(rc));\n                \
             exit(1);\n            }}"
        )
        .unwrap();
    }
    writeln!(code, "        }}\n    }}").unwrap();
    code
}

/// The C program, and the names of the functions it checks.
pub fn program(header: &str) -> (String, Vec<String>) {
    let releases = release_functions(header);
    assert!(
        releases.len() >= 8,
        "ownership table not understood: {releases:?}"
    );
    let functions: Vec<Function> = prototypes(header)
        .into_iter()
        .filter(|f| f.params.iter().any(|p| p.stars() == 2))
        .collect();
    let on_wtxn = |f: &Function| {
        f.params
            .iter()
            .any(|p| p.struct_name() == Some("etch_wtxn"))
    };
    let mut main_calls = String::new();
    let mut wtxn_calls = String::new();
    let mut id = 0;
    for pass in [Pass::NullHandles, Pass::EmptyArguments, Pass::LongKeys] {
        for f in &functions {
            id += 1;
            let code = call(f, pass, &releases, id);
            if on_wtxn(f) && pass != Pass::NullHandles {
                wtxn_calls.push_str(&code);
            } else {
                main_calls.push_str(&code);
            }
        }
    }
    let names = functions.iter().map(|f| f.name.clone()).collect();
    let program = format!(
        r#"/* Generated by ffi/tests/c_suite/out_params.rs from include/etch.h. */
#include <stdint.h>
#include "check.h"

static etch_db *live_db;
static etch_iter *live_iter;
static etch_txn *live_txn;
static etch_txn_result *live_txn_result;
static etch_watch *live_watch;
static etch_wtxn *live_wtxn;
static uint8_t long_key[{LONG}];
static int calls;

static int in_write(etch_wtxn *tx, void *ctx) {{
    (void)ctx;
    live_wtxn = tx;
{wtxn_calls}    live_wtxn = NULL;
    return ETCH_OK;
}}

int main(int argc, char **argv) {{
    CHECK(argc == 2);
    memset(long_key, 'k', sizeof long_key);
    live_db = open_test_db(argv[1], "generated.etch");
    OK(live_db, etch_range(live_db, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1, NULL,
                           &live_iter));
    OK(NULL, etch_txn_new(&live_txn));
    OK(live_db, etch_txn_commit(live_db, live_txn, &live_txn_result));
    OK(live_db, etch_watch_open(live_db, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1,
                                NULL, &live_watch));
{main_calls}    OK(live_db, etch_write(live_db, in_write, NULL, NULL));
    etch_watch_close(live_watch);
    etch_txn_result_free(live_txn_result);
    etch_txn_free(live_txn);
    etch_iter_free(live_iter);
    OK(NULL, etch_close(live_db));
    printf("out_params: %d calls\n", calls);
    printf("out_params: ok\n");
    return 0;
}}
"#
    );
    (program, names)
}
