//! The `proxygate` binary as a user meets it: bad configuration exits non-zero naming the key,
//! `.env` is read from the working directory and a real environment variable wins over it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxygate"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_key() {
    let dir = tempdir();
    for (key, value) in [
        ("PORT", "not-a-port"),
        ("ROUTING_STRATEGY", "sideways"),
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "many"),
        ("REQUEST_TIMEOUT_MS", "-5s"),
        ("HOST", "0.0.0.0"),
    ] {
        let started = Instant::now();
        let out = bin()
            .current_dir(&dir)
            .env(key, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key} not named in: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let out = bin()
        .current_dir(&dir)
        .env("HOST", "0.0.0.0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PROXYGATE_MASTER_KEY") && err.contains("--allow-open"),
        "{err}"
    );
}

#[test]
fn dotenv_is_read_and_real_env_wins() {
    let dir = tempdir();
    let from_file = free_port();
    let from_env = free_port();
    std::fs::write(
        dir.join(".env"),
        format!("PORT={from_file}\nROUTING_STRATEGY=sideways\n"),
    )
    .unwrap();
    // ROUTING_STRATEGY from .env is invalid: it must be reported, proving .env was read.
    let out = bin().current_dir(&dir).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROUTING_STRATEGY"));

    std::fs::write(dir.join(".env"), format!("PORT={from_file}\n")).unwrap();
    let mut child = bin()
        .current_dir(&dir)
        .env("PORT", from_env.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = wait_listening(from_env);
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "the real environment's PORT was not used");
}

fn wait_listening(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "proxygate-bin-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
