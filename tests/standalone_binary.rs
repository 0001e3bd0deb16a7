//! The `selfheal` binary as a user runs it: standalone, with a generated admin token, and
//! stopped by SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn wait_for_line(rx: &mpsc::Receiver<String>, log: &mut Vec<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }
    panic!(
        "no log line containing {needle:?}; log so far:\n{}",
        log.join("\n")
    );
}

#[test]
fn the_binary_serves_standalone_with_a_generated_token_and_stops_in_order_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("selfheal-bin-{}", std::process::id()));
    let token_file = dir.join("nested/admin-token");
    let mut child = Command::new(env!("CARGO_BIN_EXE_selfheal"))
        .env_remove("SYSTEM_ADMIN_TOKEN")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("SYSTEM_ADMIN_TOKEN_FILE", &token_file)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MONITOR_INTERVAL_MS", "200")
        .env("RUST_LOG", "info")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut log = Vec::new();
    let line = wait_for_line(&rx, &mut log, "listening on port");
    let port: u16 = line.rsplit(' ').next().unwrap().parse().unwrap();

    let token = std::fs::read_to_string(&token_file).expect("the token file exists");
    let token = token.trim().to_owned();
    assert_eq!(token.len(), 64, "256 random bits, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let rt = actix_web::rt::System::new();
    rt.block_on(async {
        let client = awc::Client::default();
        let base = format!("http://127.0.0.1:{port}");
        let res = client.get(format!("{base}/health")).send().await.unwrap();
        assert!(res.status().is_success());
        let res = client
            .get(format!("{base}/api/v1/system/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let mut res = client
            .get(format!("{base}/api/v1/system/health"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["data"]["agents"]["Monitor"]["state"], "running");
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_line(&rx, &mut log, "agent Monitor stopped");
    wait_for_line(&rx, &mut log, "selfheal stopped");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // Drain what is left of the log, then make sure the token never appeared in it.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push(line);
    }
    let all = log.join("\n");
    assert!(
        all.contains(&token_file.display().to_string()),
        "the log says where the token is"
    );
    assert!(!all.contains(&token), "the token value leaked into the log");
    let _ = std::fs::remove_dir_all(&dir);
}
