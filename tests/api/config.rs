//! Configuration errors: all of them at once, from the library and from the binary.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use selfheal::Settings;

#[test]
fn every_bad_variable_is_reported_together() {
    let env: HashMap<&str, &str> = [
        ("PORT", "abc"),
        ("MEMORY_THRESHOLD_PERCENT", "300"),
        ("AGENT_MAX_RESTARTS", "-1"),
        ("TRACE_SAMPLE_RATE", "2"),
        ("HOST", "127.0.0.1"),
    ]
    .into_iter()
    .collect();
    let err = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string()))
        .expect_err("the settings are invalid");
    let bad = [
        "PORT",
        "MEMORY_THRESHOLD_PERCENT",
        "AGENT_MAX_RESTARTS",
        "TRACE_SAMPLE_RATE",
    ];
    assert_eq!(err.problems.len(), bad.len(), "{err}");
    let text = err.to_string();
    for name in bad {
        assert_eq!(
            err.problems.iter().filter(|p| p.starts_with(name)).count(),
            1,
            "{name} in {err}"
        );
        assert!(text.contains(name), "{name} missing from {text}");
    }
}

#[test]
fn the_binary_exits_with_code_2_naming_every_bad_variable() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_selfheal"))
        .env_clear()
        .envs([
            ("PORT", "abc"),
            ("MEMORY_THRESHOLD_PERCENT", "300"),
            ("ENABLE_SELF_HEALING", "maybe"),
        ])
        // Away from any `.env` the binary would otherwise read.
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary kept running with a bad configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("stderr is text");
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    for name in ["PORT", "MEMORY_THRESHOLD_PERCENT", "ENABLE_SELF_HEALING"] {
        assert!(stderr.contains(name), "{name} missing from {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}
