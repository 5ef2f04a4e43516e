//! `spare relay serve` and `spare relay connect` as real processes: curl reaches an
//! HTTP server through the SOCKS5 proxy and the node.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Kills a child process when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { return };
            let mut buf = [0u8; 2048];
            let _ = tcp.read(&mut buf);
            let body = "through spare\n";
            let _ = write!(
                tcp,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn spare_has_no_loopback_test_switch() {
    let spare = Spare::new();
    for command in [&["relay", "serve"][..], &["daemon"][..]] {
        let output = spare
            .command()
            .args(command)
            .arg("--allow-loopback-for-tests")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("unexpected argument '--allow-loopback-for-tests'"),
            "{command:?}: {stderr}"
        );
    }
}

/// Starts `spare relay connect TICKET` with a SOCKS5 proxy, and fetches `http` through it
/// with curl.
fn curl_through(spare: &Spare, ticket: &str, http: SocketAddr) -> std::process::Output {
    let socks = format!("127.0.0.1:{}", free_port());
    let _connect = Running(
        spare
            .command()
            .args([
                "--key-file",
                path_str(&spare.path("client.key")),
                "relay",
                "connect",
                ticket,
                "--socks5",
                &socks,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&socks).is_err() {
        assert!(Instant::now() < deadline, "the SOCKS5 proxy never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--socks5-hostname",
            &socks,
            &format!("http://127.0.0.1:{}/", http.port()),
        ])
        .output()
        .unwrap()
}

/// curl through the real `spare relay connect` and a relay node to an HTTP server on
/// loopback. Egress refuses loopback; the node here is started by the test, which lets
/// it through in test code (`allow_loopback_for_tests`): no shipped binary can.
#[test]
fn curl_through_spare_relay_connect_and_a_relay_node() {
    let spare = Spare::new();
    let http = http_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = runtime.block_on(async {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let mut config = relay::node::NodeConfig::new(key, "127.0.0.1:0".parse().unwrap());
        let mut egress = relay::policy::EgressPolicy::open();
        egress.allow_loopback_for_tests = true;
        config.egress = Some(egress);
        relay::node::RelayNode::start(config).unwrap()
    });
    let ticket = node.ticket(vec![]).unwrap().to_string();
    let output = curl_through(&spare, &ticket, http);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "through spare\n");
    drop(node);
}

/// `spare relay serve` with open egress prints a ticket `spare relay connect` uses; the
/// same loopback server is refused through it (the node's own rules, answered to curl
/// as a SOCKS5 refusal).
#[test]
fn spare_relay_serve_prints_its_ticket_and_refuses_loopback() {
    let spare = Spare::new();
    let http = http_server();
    let mut serve = Running(
        spare
            .command()
            .args([
                "--key-file",
                path_str(&spare.path("node.key")),
                "relay",
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--egress-open",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut ticket = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut ticket)
        .unwrap();
    let ticket = ticket.trim().to_owned();
    assert!(ticket.starts_with("spare1"), "{ticket:?}");
    let output = curl_through(&spare, &ticket, http);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SOCKS5"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_bad_ticket_is_explained() {
    let spare = Spare::new();
    let key = spare.path("client.key");
    let run = spare
        .run(&[
            "--key-file",
            path_str(&key),
            "relay",
            "connect",
            "spare1abc",
            "--socks5",
            "127.0.0.1:0",
        ])
        .fails();
    assert!(run.stderr.contains("reading the ticket"), "{}", run.stderr);
}

#[test]
fn spare_ticket_names_this_node_and_its_configured_addresses() {
    let spare = Spare::new();
    let key = spare.path("node.key");
    let id = spare
        .run(&["--key-file", path_str(&key), "id"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let config = spare.path("config.toml");
    std::fs::write(
        &config,
        "[relay]\nport = 7000\npublic_addresses = [\"203.0.113.7:7000\", \"[2001:db8::1]:7000\"]\n",
    )
    .unwrap();
    let ticket = spare
        .run(&[
            "--key-file",
            path_str(&key),
            "--config",
            path_str(&config),
            "ticket",
        ])
        .ok()
        .stdout;
    let parsed: relay::ticket::Ticket = ticket.trim().parse().unwrap();
    assert_eq!(parsed.node.to_string(), id);
    assert_eq!(
        parsed.addresses,
        vec![
            "203.0.113.7:7000".parse().unwrap(),
            "[2001:db8::1]:7000".parse().unwrap()
        ]
    );
}
