//! The layering the compiler enforces, checked on the dependency graph (`cargo tree -e normal`)
//! and on the source: ARCHITECTURE.md's rules.
//!
//! - The domain imports no I/O crate (no AWS SDK, SQLite, HTTP client or server, Lambda runtime,
//!   tokio); the ports and the application none either, beyond tokio's sync and time.
//! - No Lambda links SQLite; every Lambda links one TLS and crypto stack (rustls on ring).
//! - No function crate depends on another; every port trait is in the ports crate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const FUNCTIONS: [&str; 5] = ["webhook", "admin", "router", "outbound", "agent"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The packages `package` depends on (normal dependencies, transitively, host target).
fn tree(package: &str, depth: Option<u32>) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "-p", package]);
    if let Some(depth) = depth {
        command.args(["--depth", &depth.to_string()]);
    }
    let output = command.output().expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn offending<'a>(deps: &'a BTreeSet<String>, forbidden: &[&str]) -> Vec<&'a String> {
    deps.iter()
        .filter(|d| {
            forbidden
                .iter()
                .any(|f| d.as_str() == *f || (f.ends_with('*') && d.starts_with(&f[..f.len() - 1])))
        })
        .collect()
}

const IO_CRATES: [&str; 10] = [
    "aws-*",
    "rusqlite",
    "libsqlite3-sys",
    "reqwest",
    "hyper",
    "axum",
    "lambda_http",
    "lambda_runtime",
    "rustls",
    "mio",
];

#[test]
fn the_domain_knows_no_io_crate() {
    let deps = tree("omniline-domain", None);
    let mut forbidden = IO_CRATES.to_vec();
    forbidden.push("tokio");
    let found = offending(&deps, &forbidden);
    assert!(found.is_empty(), "omniline-domain depends on {found:?}");
}

#[test]
fn the_ports_and_the_application_know_no_adapter_crate() {
    for package in ["omniline-ports", "omniline-app"] {
        let deps = tree(package, None);
        let found = offending(&deps, &IO_CRATES);
        assert!(found.is_empty(), "{package} depends on {found:?}");
        for adapter in [
            "omniline-aws",
            "omniline-embedded",
            "omniline-line",
            "omniline-wiring",
        ] {
            assert!(!deps.contains(adapter), "{package} depends on {adapter}");
        }
    }
}

#[test]
fn the_embedded_and_aws_adapters_do_not_know_each_other() {
    let aws = tree("omniline-aws", None);
    assert!(offending(&aws, &["rusqlite", "libsqlite3-sys", "omniline-embedded"]).is_empty());
    let embedded = tree("omniline-embedded", None);
    assert!(offending(&embedded, &["aws-*", "omniline-aws", "reqwest"]).is_empty());
}

#[test]
fn no_lambda_links_sqlite_and_each_links_one_crypto_stack() {
    for function in FUNCTIONS {
        let deps = tree(function, None);
        let sqlite = offending(&deps, &["rusqlite", "libsqlite3-sys", "omniline-embedded"]);
        assert!(sqlite.is_empty(), "{function} links {sqlite:?}");
        let crypto = offending(
            &deps,
            &[
                "aws-lc-rs",
                "aws-lc-sys",
                "aws-lc-fips-sys",
                "openssl",
                "openssl-sys",
            ],
        );
        assert!(
            crypto.is_empty(),
            "{function} links a second crypto stack: {crypto:?}"
        );
        assert!(deps.contains("ring"), "{function}: rustls on ring expected");
    }
}

#[test]
fn no_function_crate_depends_on_another() {
    for function in FUNCTIONS {
        let deps = tree(function, None);
        for other in FUNCTIONS.iter().filter(|f| **f != function) {
            assert!(!deps.contains(*other), "{function} depends on {other}");
        }
    }
}

/// Every Rust source file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_port_trait_is_in_the_ports_crate() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["shared", "functions", "local/src", "loadtest/src"] {
        sources(&root.join(dir), &mut files);
    }
    // A port: an async public trait the use cases hold as `Arc<dyn …>`, `Send + Sync`.
    let port = regex::Regex::new(
        r"(?m)^#\[(?:async_trait::)?async_trait\]\npub trait (\w+)\s*:\s*Send \+ Sync",
    )
    .expect("regex");
    let ports_dir = root.join("shared/ports/src");
    let mut outside = Vec::new();
    let mut inside = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for c in port.captures_iter(&text) {
            if file.starts_with(&ports_dir) {
                inside += 1;
            } else {
                outside.push(format!("{} in {}", &c[1], file.display()));
            }
        }
    }
    assert!(inside >= 12, "the ports crate holds {inside} port traits");
    assert!(
        outside.is_empty(),
        "port traits outside the ports crate: {outside:?}"
    );
}
