//! The real services the data-layer tests talk to, and ways to take them away.
//!
//! - [`TestDb`]: a fresh Postgres database per test (dropped afterwards), on the server named
//!   by `SELFHEAL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! - [`redis_url`] and [`test_prefix`]: the Redis of `SELFHEAL_TEST_REDIS_URL` (default
//!   `redis://127.0.0.1:6379`) and a random key prefix per test, so tests run in parallel.
//! - [`TcpProxy`]: a loopback TCP relay in front of either, which a test can take down
//!   (existing connections cut, new ones refused) and bring back on the same port. Our code
//!   talks to the proxy exactly as to the server: nothing of ours is replaced.
//!
//! A missing service fails the test with a message saying what to start; nothing is skipped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;

type SyncPg = AsyncConnectionWrapper<AsyncPgConnection>;

/// The Postgres server the tests use (its `postgres` database).
pub fn pg_admin_url() -> String {
    std::env::var("SELFHEAL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("SELFHEAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A random Redis key prefix for one test.
pub fn test_prefix() -> String {
    format!("selfheal-test:{}:", uuid::Uuid::new_v4().simple())
}

/// Run blocking diesel work on a thread of its own (the sync wrapper brings its own runtime,
/// which must not run inside the test's).
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f)
        .join()
        .expect("the database thread did not panic")
}

fn admin_connection() -> SyncPg {
    let url = pg_admin_url();
    <SyncPg as Connection>::establish(&url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url} ({e}). Start it (scripts/test.sh does: \
             pg_ctlcluster <version> main start) or set SELFHEAL_TEST_DATABASE_URL."
        )
    })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a postgres URL with a database");
    format!("{base}/{name}")
}

/// A fresh, empty database, dropped (with its connections) when this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        // The creation time is in the name: scripts/test.sh drops only databases left behind
        // by runs that are long over, never those of a suite running now.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("selfheal_t_{epoch}_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE DATABASE \"{name}\"");
        on_thread(move || {
            admin_connection()
                .batch_execute(&sql)
                .expect("CREATE DATABASE")
        });
        TestDb {
            url: with_database(&pg_admin_url(), &name),
            name,
        }
    }

    /// Run `sql` (statements) on this database.
    pub fn execute(&self, sql: &str) {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_thread(move || {
            let mut conn = <SyncPg as Connection>::establish(&url).expect("connect");
            conn.batch_execute(&sql).expect("the SQL runs");
        })
    }

    /// Run `sql` on the server's `postgres` database (to alter or kick this one's sessions).
    pub fn as_admin(&self, sql: &str) {
        let sql = sql.to_owned();
        on_thread(move || {
            admin_connection()
                .batch_execute(&sql)
                .expect("the SQL runs")
        });
    }

    /// End every session on this database (they reconnect with its current settings).
    pub fn kick_sessions(&self) {
        self.as_admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ));
    }

    /// The first column of the first row of `sql`, as a bigint.
    pub fn scalar(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        let (url, sql) = (self.url.clone(), format!("SELECT ({sql})::bigint AS v"));
        on_thread(move || {
            use diesel::RunQueryDsl;
            let mut conn = <SyncPg as Connection>::establish(&url).expect("connect");
            diesel::sql_query(sql)
                .get_result::<Row>(&mut conn)
                .expect("the query runs")
                .v
        })
    }

    /// This database reached through `proxy` (same credentials and name).
    pub fn url_via(&self, proxy: &TcpProxy) -> String {
        let rest = self.url.split_once('@').expect("a URL with a user").1;
        let db = rest.split_once('/').expect("a URL with a database").1;
        let user = self.url.split_once('@').expect("user").0;
        format!("{user}@{}/{db}", proxy.addr())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let _ = admin_connection().batch_execute(&sql);
        })
        .join();
    }
}

/// `host:port` of a URL like `scheme://[user@]host:port[/...]`.
fn host_port(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let after_user = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, r)| r);
    after_user
        .split('/')
        .next()
        .unwrap_or(after_user)
        .to_owned()
}

/// A TCP relay on 127.0.0.1 that can be taken down and brought back on the same port.
pub struct TcpProxy {
    addr: SocketAddr,
    upstream: String,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    up: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    /// Bumped on every `up`, so an old acceptor thread knows to quit.
    generation: Mutex<u64>,
}

impl TcpProxy {
    /// A relay to the server of `url` (Postgres or Redis URL).
    pub fn start(url: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = TcpProxy {
            addr,
            upstream: host_port(url),
            state: Arc::new(ProxyState::default()),
        };
        proxy.serve(listener);
        proxy
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        url.replacen(&host_port(url), &self.addr.to_string(), 1)
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let upstream = self.upstream.clone();
        state.up.store(true, Ordering::SeqCst);
        let generation = {
            let mut g = state.generation.lock().expect("lock");
            *g += 1;
            *g
        };
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        std::thread::spawn(move || loop {
            if !state.up.load(Ordering::SeqCst)
                || *state.generation.lock().expect("lock") != generation
            {
                return; // the listener is dropped: new connections are refused
            }
            match listener.accept() {
                Ok((client, _)) => {
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let mut conns = state.conns.lock().expect("lock");
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            conns.push(c);
                        }
                    }
                    drop(conns);
                    pipe(&client, &server);
                    pipe(&server, &client);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        });
    }

    /// Take the service away: cut every relayed connection and refuse new ones.
    pub fn down(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        for c in self.state.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Let the acceptor notice and drop its listener.
        std::thread::sleep(Duration::from_millis(30));
    }

    /// Bring it back on the same port.
    pub fn up(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the proxy port {} could not be bound again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// Copy `from` to `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
