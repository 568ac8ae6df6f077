//! `etch cert ca | node`: the files it writes (PEM, keys 0600, never overwritten), its argument
//! errors, a CA key that does not match its certificate, and the certificates at work: one
//! node's pair as `etch serve`'s server certificate with client-cert-auth, another node's pair
//! as the client's certificate.

use crate::common;

use std::path::Path;

use common::serve::Server;
use common::Env;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn ca_and_node_files() {
    let env = Env::new();
    let dir = env.path("certs");
    let out = env.ok(&["cert", "ca", "--dir", &s(&dir)]);
    assert_eq!(
        out,
        format!("{}\n{}\n", s(&dir.join("ca.crt")), s(&dir.join("ca.key")))
    );
    let out = env.ok(&[
        "cert",
        "node",
        "--dir",
        &s(&dir),
        "--name",
        "n1",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
        "--dns",
        "localhost",
    ]);
    assert_eq!(
        out,
        format!("{}\n{}\n", s(&dir.join("n1.crt")), s(&dir.join("n1.key")))
    );
    for cert in ["ca.crt", "n1.crt"] {
        let text = std::fs::read_to_string(dir.join(cert)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    }
    for key in ["ca.key", "n1.key"] {
        let text = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key} is readable by others");
        }
    }

    // Nothing is overwritten: the CA, or a node that exists.
    let ca_before = std::fs::read(dir.join("ca.key")).unwrap();
    let err = env.fails(&["cert", "ca", "--dir", &s(&dir)], 1);
    assert!(err.contains("ca.crt exists"), "{err}");
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), ca_before);
    let err = env.fails(
        &[
            "cert",
            "node",
            "--dir",
            &s(&dir),
            "--name",
            "n1",
            "--ip",
            "127.0.0.1",
        ],
        1,
    );
    assert!(err.contains("n1.crt exists"), "{err}");

    // Argument errors.
    let err = env.fails(&["cert", "node", "--dir", &s(&dir), "--name", "n2"], 128);
    assert!(err.contains("--ip or --dns"), "{err}");
    let err = env.fails(
        &[
            "cert",
            "node",
            "--dir",
            &s(&dir),
            "--name",
            "../n2",
            "--ip",
            "127.0.0.1",
        ],
        128,
    );
    assert!(err.contains("file name"), "{err}");
    env.fails(
        &[
            "cert",
            "node",
            "--dir",
            &s(&dir),
            "--name",
            "n2",
            "--ip",
            "not-an-ip",
        ],
        128,
    );
    // No CA in the directory.
    let empty = env.path("empty");
    let err = env.fails(
        &[
            "cert",
            "node",
            "--dir",
            &s(&empty),
            "--name",
            "n2",
            "--ip",
            "127.0.0.1",
        ],
        1,
    );
    assert!(err.contains("ca.crt"), "{err}");
    assert!(!empty.join("n2.key").exists());
}

#[test]
fn a_ca_key_from_another_ca_is_caught() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    env.ok(&["cert", "ca", "--dir", &s(&a)]);
    env.ok(&["cert", "ca", "--dir", &s(&b)]);
    std::fs::remove_file(a.join("ca.key")).unwrap();
    std::fs::copy(b.join("ca.key"), a.join("ca.key")).unwrap();
    let err = env.fails(
        &[
            "cert",
            "node",
            "--dir",
            &s(&a),
            "--name",
            "n1",
            "--ip",
            "127.0.0.1",
        ],
        1,
    );
    assert!(err.contains("does not verify"), "{err}");
    assert!(!a.join("n1.crt").exists() && !a.join("n1.key").exists());
}

#[test]
fn node_certificates_serve_as_server_and_client_certificates() {
    let env = Env::new();
    let dir = env.path("certs");
    env.ok(&["cert", "ca", "--dir", &s(&dir)]);
    for name in ["n1", "n2"] {
        env.ok(&[
            "cert",
            "node",
            "--dir",
            &s(&dir),
            "--name",
            name,
            "--ip",
            "127.0.0.1",
        ]);
    }
    let server = Server::start_with(
        "https",
        &[
            "--cert-file",
            &s(&dir.join("n1.crt")),
            "--key-file",
            &s(&dir.join("n1.key")),
            "--trusted-ca-file",
            &s(&dir.join("ca.crt")),
            "--client-cert-auth",
        ],
    );
    let c = server.client();
    let as_node = |name: &str, args: &[&str]| {
        let mut all = vec![
            "--cacert".to_string(),
            s(&dir.join("ca.crt")),
            "--cert".to_string(),
            s(&dir.join(format!("{name}.crt"))),
            "--key".to_string(),
            s(&dir.join(format!("{name}.key"))),
            "--command-timeout".to_string(),
            "5s".to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        c.run(&refs)
    };
    // n2's certificate as a client, n1's as the server: both verified against the CA.
    let r = as_node("n2", &["put", "k", "v"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "OK\n"), "{}", r.stderr);
    // The server's own pair works as a client certificate too.
    let r = as_node("n1", &["get", "k", "--print-value-only"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "v\n"), "{}", r.stderr);
    // A certificate from another CA made by `etch cert` is refused.
    let other = env.path("other");
    env.ok(&["cert", "ca", "--dir", &s(&other)]);
    env.ok(&[
        "cert",
        "node",
        "--dir",
        &s(&other),
        "--name",
        "x",
        "--ip",
        "127.0.0.1",
    ]);
    let r = c.run(&[
        "--cacert",
        &s(&dir.join("ca.crt")),
        "--cert",
        &s(&other.join("x.crt")),
        "--key",
        &s(&other.join("x.key")),
        "--command-timeout",
        "2s",
        "put",
        "intruder",
        "v",
    ]);
    assert_eq!(r.code, 1, "served another CA's certificate: {}", r.stdout);
}

#[test]
fn help_with_examples() {
    let env = Env::new();
    for cmd in [&["cert"][..], &["cert", "ca"], &["cert", "node"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = env.ok(&args);
        assert!(out.contains("Example"), "{cmd:?} has no example: {out}");
        let example = format!("etch {}", cmd.join(" "));
        assert!(out.contains(&example), "{cmd:?}: no `{example}` in {out}");
    }
    assert!(env.ok(&["cert", "--help"]).contains("0600"));
}
