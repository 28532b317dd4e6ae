//! The packaging files (`Dockerfile`, `packaging/jubilant.service`) agree
//! with the server they package: the ports it listens on by default, the
//! environment variables its flags read, and limits above its own
//! (descriptors above `max_connections`, a stop timeout above the
//! shutdown drain).

// Reads files of the repository and runs the real binary.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::Command;

use jubilant_server::config::Config;

fn repository_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of the first `Key=value` line of a unit file.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
}

fn seconds(text: &str) -> u64 {
    text.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text} is not N s"))
}

#[test]
fn the_systemd_unit_allows_more_than_the_server_uses() {
    let defaults = Config::from_toml("").expect("defaults");
    let unit = repository_file("packaging/jubilant.service");
    let files: u64 = unit_value(&unit, "LimitNOFILE").parse().expect("a number");
    assert!(files > 2 * defaults.server.max_connections as u64);
    let stop = seconds(unit_value(&unit, "TimeoutStopSec"));
    assert!(stop * 1000 > 2 * defaults.server.shutdown_timeout_ms);
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM", "the drain");
    assert!(unit_value(&unit, "ExecStart").starts_with("/usr/local/bin/jubilant-server"));
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
}

#[test]
fn the_dockerfile_exposes_the_default_ports_and_sets_only_real_variables() {
    let defaults = Config::from_toml("").expect("defaults");
    let dockerfile = repository_file("Dockerfile");
    let resp_port = defaults
        .resp
        .listen
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let expose = format!("EXPOSE {} {resp_port}", defaults.server.port);
    assert!(dockerfile.contains(&expose), "{expose}");
    assert!(dockerfile.contains(&format!("0.0.0.0:{}", defaults.server.port)));
    // Every JUBILANT_* the image sets is one the server or jubectl reads.
    let help = |binary: &str| {
        let output = Command::new(binary).arg("--help").output().expect("run");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Help may wrap a line anywhere: compare with whitespace collapsed.
    let known = help(env!("CARGO_BIN_EXE_jubilant-server"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // jubectl's binary belongs to another package: its variables are read
    // from its source.
    let jubectl = repository_file("jubectl/src/main.rs");
    let mut set = 0;
    for word in dockerfile.split(|c: char| c.is_whitespace() || c == '\\') {
        if let Some((name, _)) = word.split_once('=')
            && name.starts_with("JUBILANT_")
        {
            set += 1;
            assert!(
                known.contains(&format!("[env: {name}="))
                    || jubectl.contains(&format!("env = \"{name}\"")),
                "{name} is read by nothing"
            );
        }
    }
    assert!(
        set >= 4,
        "the image configures the server through its variables"
    );
    assert!(dockerfile.contains("USER jubilant"), "not root");
    assert!(dockerfile.contains("HEALTHCHECK"));
}
