//! Real local receivers for what selfheal sends out, for tests of the notification channels.
//!
//! - [`HttpReceiver`]: an actix-web server on `127.0.0.1:0` (Slack webhooks, PagerDuty
//!   events) that records every request and answers from a script.
//! - [`SmtpSink`]: a small SMTP server on `127.0.0.1:0` that lettre can deliver to; it records
//!   every message and can be told to fail a command once.
//!
//! Each runs on a thread of its own (the HTTP one in an actix `System` of its own, like the
//! apps in `helpers`), so it keeps answering whatever the test's own `System` is doing, and
//! stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::rt::System;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How often `wait_for` re-checks.
const POLL_EVERY: Duration = Duration::from_millis(10);

// ---- HTTP ---------------------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, e.g. `/services/T0/B0/x`.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
    pub text: String,
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// An answer the receiver gives: status, headers, body, after `delay`.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Scripted {
    /// `status` with an empty body, no delay.
    pub fn status(status: u16) -> Self {
        Scripted {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    /// Answer only after `delay` (the request is recorded on arrival).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct HttpState {
    requests: Vec<Received>,
    script: VecDeque<Scripted>,
    default: Scripted,
}

/// An HTTP server that records requests and answers from a script (then the default).
pub struct HttpReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<HttpState>>,
    system: System,
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.system.stop();
    }
}

impl HttpReceiver {
    /// Answers `200 ok` (like a Slack webhook) unless scripted otherwise.
    pub fn start() -> HttpReceiver {
        HttpReceiver::with_default(Scripted::status(200).body("ok"))
    }

    /// Answers `202` with PagerDuty's success body unless scripted otherwise.
    pub fn pagerduty() -> HttpReceiver {
        HttpReceiver::with_default(
            Scripted::status(202)
                .header("content-type", "application/json")
                .body(r#"{"status":"success","message":"Event processed"}"#),
        )
    }

    /// Answers `default` to every request not scripted with [`HttpReceiver::push`].
    pub fn with_default(default: Scripted) -> HttpReceiver {
        let state = Arc::new(Mutex::new(HttpState {
            requests: Vec::new(),
            script: VecDeque::new(),
            default,
        }));
        let server_state = web::Data::from(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runner = System::new();
            let started = runner.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(server_state.clone())
                        .default_service(web::to(receive))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("the receiver binds");
                let addr = server.addrs()[0];
                actix_web::rt::spawn(server.run());
                addr
            });
            if tx.send((started, System::current())).is_ok() {
                let _ = runner.run();
            }
        });
        let (addr, system) = rx.recv().expect("the receiver started");
        HttpReceiver {
            addr,
            state,
            system,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Answer the next unanswered request with `status`, `headers` and `body`.
    pub fn push_response(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let mut s = Scripted::status(status).body(body);
        for (k, v) in headers {
            s = s.header(k, v);
        }
        self.push(s);
    }

    /// Answer the next unanswered request with `answer`.
    pub fn push(&self, answer: Scripted) {
        self.state.lock().unwrap().script.push_back(answer);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Wait until at least `n` requests have arrived; fails the test after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} requests within {timeout:?}, got {}: {got:#?}",
                got.len()
            );
            actix_web::rt::time::sleep(POLL_EVERY).await;
        }
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<HttpState>>,
) -> HttpResponse {
    let text = String::from_utf8_lossy(&body).into_owned();
    let received = Received {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.path().to_owned(), |p| p.to_string()),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        at: Instant::now(),
    };
    let answer = {
        let mut s = state.lock().unwrap();
        s.requests.push(received);
        s.script.pop_front().unwrap_or_else(|| s.default.clone())
    };
    if !answer.delay.is_zero() {
        actix_web::rt::time::sleep(answer.delay).await;
    }
    let mut resp = HttpResponse::build(StatusCode::from_u16(answer.status).unwrap());
    for (k, v) in &answer.headers {
        resp.insert_header((k.as_str(), v.as_str()));
    }
    resp.body(answer.body)
}

// ---- SMTP ---------------------------------------------------------------------------------

/// One delivered message.
#[derive(Debug, Clone)]
pub struct SmtpMessage {
    /// The envelope sender (`MAIL FROM`), without the angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// The message as sent after `DATA` (headers and body, dot-unstuffed, CRLF line ends).
    pub data: String,
}

impl SmtpMessage {
    /// The first header `name` of the message (unfolded), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }
}

/// Where a scripted SMTP failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpStage {
    Mail,
    Rcpt,
    Data,
}

#[derive(Default)]
struct SmtpState {
    messages: Vec<SmtpMessage>,
    faults: VecDeque<(SmtpStage, String)>,
}

/// An SMTP server that accepts everything (unless told otherwise) and records each message.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<SmtpState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let state = Arc::new(Mutex::new(SmtpState::default()));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the SMTP sink");
            rt.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .expect("the SMTP sink binds");
                tx.send(listener.local_addr().expect("a local address"))
                    .expect("the test waits for the sink");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            if let Ok((stream, _)) = accepted {
                                tokio::spawn(serve_smtp(stream, server_state.clone()));
                            }
                        }
                    }
                }
            });
        });
        let addr = rx.recv().expect("the SMTP sink started");
        SmtpSink {
            addr,
            state,
            stop: Some(stop_tx),
        }
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, for `SMTP_URL`).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Answer the next `stage` command with `reply` (e.g. `"451 4.3.0 try again later"`)
    /// instead of accepting it.
    pub fn fail_next(&self, stage: SmtpStage, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push_back((stage, reply.to_owned()));
    }

    /// Every message delivered so far.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Wait until at least `n` messages have been delivered; fails the test after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<SmtpMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages within {timeout:?}, got {}",
                got.len()
            );
            actix_web::rt::time::sleep(POLL_EVERY).await;
        }
    }
}

/// One reply, CRLF-terminated.
fn reply(text: String) -> String {
    text + "\r\n"
}

/// The scripted failure for `stage`, if it is next in line.
fn fault(state: &Mutex<SmtpState>, stage: SmtpStage) -> Option<String> {
    let mut s = state.lock().unwrap();
    if s.faults.front().is_some_and(|(st, _)| *st == stage) {
        s.faults.pop_front().map(|(_, reply)| reply)
    } else {
        None
    }
}

fn address(arg: &str) -> String {
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_owned(),
        _ => arg
            .split_once(':')
            .map_or(arg, |(_, v)| v)
            .trim()
            .to_owned(),
    }
}

async fn serve_smtp(stream: TcpStream, state: Arc<Mutex<SmtpState>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(reply("220 sink ESMTP ready".into()).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let arg = command.get(verb.len()..).unwrap_or("").trim();
        let answer = match verb.as_str() {
            "EHLO" => "250-sink greets you\r\n250 8BITMIME".to_owned(),
            "HELO" => "250 sink".to_owned(),
            "MAIL" => fault(&state, SmtpStage::Mail).unwrap_or_else(|| {
                from = address(arg);
                to.clear();
                "250 2.1.0 OK".to_owned()
            }),
            "RCPT" => fault(&state, SmtpStage::Rcpt).unwrap_or_else(|| {
                to.push(address(arg));
                "250 2.1.5 OK".to_owned()
            }),
            "DATA" => match fault(&state, SmtpStage::Data) {
                Some(failure) => failure,
                None => {
                    if write
                        .write_all(reply("354 end data with <CR><LF>.<CR><LF>".into()).as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let mut data = String::new();
                    loop {
                        line.clear();
                        match lines.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let l = line.trim_end_matches(['\r', '\n']);
                        if l == "." {
                            break;
                        }
                        data.push_str(
                            l.strip_prefix('.')
                                .filter(|_| l.starts_with(".."))
                                .unwrap_or(l),
                        );
                        data.push_str("\r\n");
                    }
                    state.lock().unwrap().messages.push(SmtpMessage {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                    });
                    "250 2.0.0 OK queued".to_owned()
                }
            },
            "RSET" => {
                from.clear();
                to.clear();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                let _ = write
                    .write_all(reply("221 2.0.0 bye".into()).as_bytes())
                    .await;
                return;
            }
            _ => "502 5.5.2 command not recognized".to_owned(),
        };
        if write.write_all(reply(answer).as_bytes()).await.is_err() {
            return;
        }
    }
}
