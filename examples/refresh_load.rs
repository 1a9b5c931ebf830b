//! The refresh benchmark's client (`benches/load.sh refresh`): CLIENTS
//! connections, each logging in once as its own user (`user0`, `user1`, …,
//! password `secret`) and then rotating its session in a loop, each
//! refresh presenting the refresh token the previous one answered. Prints
//! the grants per second and the latency percentiles of the refreshes;
//! given the server's pid and the clock ticks per second (`getconf
//! CLK_TCK`), also the server's CPU time per grant (user + system, from
//! `/proc/PID/stat`, over the refreshes only: the logins' hashes are not
//! counted).
//!
//! ```sh
//! cargo run --release --example refresh_load -- 127.0.0.1:8000 32 10 [PID HZ]
//! ```
//!
//! Plain HTTP/1.1 on keep-alive connections, written by hand: the client
//! should cost little beside the server it measures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: refresh_load ADDR CLIENTS SECONDS [PID HZ]";
    let (Some(addr), Some(clients), Some(seconds)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
        args.get(3).and_then(|a| a.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    // Every client logs in first; the clock starts when all have.
    let mut logged_in = Vec::new();
    for i in 0..clients {
        logged_in.push(tokio::spawn(log_in(addr, i)));
    }
    let mut sessions = Vec::new();
    for client in logged_in {
        sessions.push(client.await.expect("a client panicked"));
    }
    let server = args.get(4).zip(args.get(5));
    let cpu_before = server.map(|(pid, _)| cpu_ticks(pid));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut running = Vec::new();
    for (stream, token) in sessions {
        running.push(tokio::spawn(rotate(stream, token, end)));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for client in running {
        let (times, failures) = client.await.expect("a client panicked");
        latencies.extend(times);
        failed += failures;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server.zip(cpu_before).map(|((pid, hz), before)| {
        let hz: f64 = hz.parse().expect("HZ");
        (cpu_ticks(pid) - before) as f64 / hz
    });
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies
            .get(i - 1)
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1e3)
    };
    let grants = latencies.len();
    print!(
        "grants {grants} in {elapsed:.2}s: {:.0} grants/s, p50 {:.3} ms, p99 {:.3} ms, failed {failed}",
        grants as f64 / elapsed,
        at(0.50),
        at(0.99),
    );
    match cpu {
        Some(cpu) => println!(
            ", server CPU {:.2} us/grant",
            cpu / grants.max(1) as f64 * 1e6
        ),
        None => println!(),
    }
}

/// A process's CPU time so far, user and system, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's stat");
    // The fields after the command's name, which may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
        .split(' ')
        .collect();
    // utime and stime: fields 14 and 15, the 12th and 13th after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Client `i`'s connection and first refresh token.
async fn log_in(addr: SocketAddr, i: usize) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (status, body) = post(&mut stream, &format!("username=user{i}&password=secret")).await;
    assert_eq!(status, 200, "user{i}'s login: {body}");
    let token = refresh_token(&body).unwrap_or_else(|| panic!("no refresh_token in {body}"));
    (stream, token)
}

/// Refreshes until `end`: each grant's latency, and the refusals.
async fn rotate(mut stream: TcpStream, mut token: String, end: Instant) -> (Vec<Duration>, u64) {
    let (mut times, mut failed) = (Vec::new(), 0);
    while Instant::now() < end {
        let sent = Instant::now();
        let form = format!("grant_type=refresh_token&refresh_token={token}");
        let (status, body) = post(&mut stream, &form).await;
        match refresh_token(&body) {
            Some(next) if status == 200 => {
                times.push(sent.elapsed());
                token = next;
            }
            // The session is gone: nothing to rotate any more.
            _ => {
                failed += 1;
                eprintln!("refresh_load: a refresh answered {status}: {body}");
                break;
            }
        }
    }
    (times, failed)
}

/// `POST /token` with `form` on `stream`: the status and the body.
async fn post(stream: &mut TcpStream, form: &str) -> (u16, String) {
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(stream, &mut buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    while buf.len() < head_end + length {
        read_more(stream, &mut buf).await;
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    (status, body)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await.expect("read");
    assert!(n > 0, "the server closed the connection");
    buf.extend_from_slice(&chunk[..n]);
}

/// The `refresh_token` of a token answer.
fn refresh_token(body: &str) -> Option<String> {
    let from = body.find(r#""refresh_token":""#)? + r#""refresh_token":""#.len();
    let to = from + body[from..].find('"')?;
    Some(body[from..to].to_owned())
}
