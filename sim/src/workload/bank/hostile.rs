//! The server workload's hostile clients, beside the honest ones: clients
//! that pipeline audits and never read an answer, clients that send half
//! a frame and then nothing, and crowds that take more connections than
//! the server serves, each sending a few bytes. Each connection speaks the
//! native protocol or, half the time, RESP to the RESP listener.
//!
//! Oracles (on top of the honest clients' own):
//! - `hostile_closed`: every hostile connection is closed by the server
//!   within a bound (the frame timeout, thrice, plus 30 ms), unless its
//!   life ended first;
//! - `vanished_dropped`: the server drops the connection of a client that
//!   vanished within its keepalive time, a retransmission timeout and
//!   slack, unless the life ended first;
//! - `server_memory` (checked by the server's monitor, `process.rs`): the
//!   answer and request bytes the server holds stay under their budgets
//!   plus one answer and one read per connection.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{Either, select};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::env::{Clock, MonoTime, Spawn};
use jubilant_core::mutex::lock;
use jubilant_core::txn::{Mode, Txn};
use jubilant_io_sim::{SimEnv, SimRng, SimStream, Stream};

use super::Model;
use super::client::Life;
use super::resp_client::encode;
use super::shape::{Shape, account_key};

/// How many hostile clients of each kind a world has (server workload),
/// and the frame timeout they meet.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Hostility {
    /// The server's `frame_read_timeout_ms`: short, as lives are.
    pub(super) frame_timeout_ms: u64,
    /// Clients that pipeline audits and never read.
    pub(super) non_readers: u64,
    /// Clients that send half a frame, then nothing.
    pub(super) tricklers: u64,
    /// Connections a crowd opens at once, each sending 3 bytes.
    pub(super) crowd: u64,
    /// Clients that send a request and vanish (their end goes silent, as
    /// on a power loss or a NAT timeout).
    pub(super) vanishers: u64,
    /// Whether the server has `[[users]]` (honest clients authenticate).
    pub(super) users: bool,
    /// With users: clients that write without authenticating, or after a
    /// wrong password, or as a guest where its ACL forbids (oracle
    /// `authorization`).
    pub(super) intruders: u64,
    /// With users: the honest user's rules (`None`: no `acl` entry), one
    /// of several that grant everything.
    pub(super) bank_acl: Option<&'static str>,
}

/// Rules that each let the honest clients do all they do.
const BANK_ACLS: [Option<&str>; 4] = [
    None,
    Some("on ~* +@all"),
    Some("on allkeys allcommands -@dangerous +info +checkpoint"),
    Some("on %RW~* resetkeys %R~* %W~* ~account:* ~* &* +@all"),
];

impl Hostility {
    /// Drawn from its own stream, so the worlds of the seeds already in
    /// the corpus keep every other setting.
    pub(super) fn draw(seed_rng: &mut SimRng) -> Self {
        let value = seed_rng.next_u64();
        let mut rng = SimRng::new(value, Stream::Hostile);
        // Users and intruders from a stream of their own: the worlds drawn
        // before they existed keep every other setting.
        let mut auth = SimRng::new(value ^ USERS_SALT, Stream::Hostile);
        let users = auth.chance(0.3);
        let intruders = if users { auth.between(1, 3) } else { 0 };
        let bank_acl = if users {
            BANK_ACLS[auth.below(BANK_ACLS.len() as u64) as usize]
        } else {
            None
        };
        let frame_timeout_ms = rng.between(2, 10);
        if rng.chance(0.5) {
            return Hostility {
                frame_timeout_ms,
                users,
                intruders,
                bank_acl,
                ..Hostility::default()
            };
        }
        Hostility {
            frame_timeout_ms,
            non_readers: rng.below(3),
            tricklers: rng.below(4),
            crowd: [0, rng.between(1, 40)][rng.below(2) as usize],
            vanishers: rng.below(3),
            users,
            intruders,
            bank_acl,
        }
    }
}

/// Mixed into the hostility seed for the users' stream.
const USERS_SALT: u64 = 0x05e2_5000_0000_0000;

/// The user honest clients authenticate as, when the world has users.
pub(super) const BANK_USER: &str = "bank";
/// Its password.
pub(super) const BANK_PASSWORD: &[u8] = b"bank-password";

/// A user intruders know the password of, whose ACL lets it read
/// everything and write only `guest-*` keys, and run nothing dangerous.
pub(super) const GUEST_USER: &str = "guest";
/// Its password.
pub(super) const GUEST_PASSWORD: &[u8] = b"guest-password";
/// Its rules.
pub(super) const GUEST_ACL: &str = "on %R~* %W~guest-* +@all -@dangerous";

/// `password`'s argon2id hash with the smallest parameters argon2
/// allows (8 KiB, one pass): a simulated world verifies many times, and
/// what is tested is who gets in, not the hash's cost.
pub(super) fn password_hash(password: &[u8]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("valid parameters");
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::from_b64("c2ltdWxhdGVkc2FsdA").expect("a valid salt");
    argon2
        .hash_password(password, &salt)
        .expect("hashing works")
        .to_string()
}

/// The keys intruders try to write: no commit may ever touch one.
pub(crate) const INTRUDER_PREFIX: &[u8] = b"intruder-";

/// A client with no password, then a wrong one, trying to write
/// `intruder-*` keys on both listeners, and half the time then the guest
/// (whose ACL forbids those keys and dangerous commands) trying again,
/// alone and as a transaction's second key; every answer must be a
/// refusal (oracle `authorization`; the commit observer checks that no
/// such key is ever written).
pub(super) async fn intruder(env: SimEnv, model: Model, life: Life, mut rng: SimRng) {
    use jubilant_client::{Client, ClientError, ErrorCode};
    while !life.over() {
        let resp = rng.chance(0.5);
        // A connection of its own for the guest: one after a wrong
        // password would wait out the address's failure delay.
        let guest = rng.chance(0.4);
        let Some(mut stream) = connect(&env, &life, resp).await else {
            return;
        };
        let key = format!("intruder-{}", rng.below(1000));
        if resp && guest {
            // Read until the last answer, so the server runs them all.
            let _ = stream.write_all(&guest_requests(&mut rng)).await;
            drain_until(&env, &life, &mut stream, GUEST_DONE.as_bytes()).await;
            continue;
        }
        if resp {
            // No password, then a wrong one, then a write: unread replies
            // are fine, what matters is that nothing commits.
            let requests = encode(&[
                vec![b"SET".to_vec(), key.clone().into_bytes(), b"1".to_vec()],
                vec![
                    b"AUTH".to_vec(),
                    BANK_USER.as_bytes().to_vec(),
                    b"wrong".to_vec(),
                ],
                vec![b"SET".to_vec(), key.into_bytes(), b"2".to_vec()],
            ]);
            let _ = stream.write_all(&requests).await;
            env.sleep(Duration::from_millis(rng.between(1, 20))).await;
            continue;
        }
        let (client, driver) = Client::new(stream);
        drop(env.spawn("intruder-driver", driver));
        let refused = |answer: Result<(), ClientError>, code: ErrorCode, what: &str| {
            let mut m = lock(&model);
            m.verdict.check("authorization", 1);
            match answer {
                Ok(()) => m
                    .verdict
                    .fail("authorization", format!("an intruder's {what} was served")),
                Err(ClientError::Server { code: got, .. }) if got != code => m.verdict.fail(
                    "authorization",
                    format!("an intruder's {what} was refused with {got:?}, not {code:?}"),
                ),
                Err(_) => {}
            }
        };
        if guest {
            if client.auth(GUEST_USER, GUEST_PASSWORD).await.is_err() {
                continue;
            }
            let denied = ErrorCode::PermissionDenied;
            let wrote = client.set(key.as_str(), 3i64).await.map(drop);
            refused(wrote, denied, "write as a guest of a forbidden key");
            // The forbidden key second: every key is checked.
            let mut txn = Txn::new();
            let allowed = txn.key(format!("guest-{}", rng.below(1000)), Mode::RW);
            let forbidden = txn.key(key.as_str(), Mode::RW);
            txn.set(allowed, 1i64).set(forbidden, 4i64);
            let wrote = client.transaction(&txn).await.map(drop);
            refused(
                wrote,
                denied,
                "transaction as a guest with a forbidden second key",
            );
            let checkpointed = client.checkpoint().await.map(drop);
            refused(checkpointed, denied, "checkpoint (@dangerous) as a guest");
            continue;
        }
        let wrote = client.set(key.as_str(), 1i64).await.map(drop);
        refused(wrote, ErrorCode::AuthRequired, "write without a password");
        let authed = client.auth(BANK_USER, b"wrong").await;
        refused(authed, ErrorCode::WrongPass, "wrong password");
        let wrote = client.set(key.as_str(), 2i64).await.map(drop);
        refused(
            wrote,
            ErrorCode::AuthRequired,
            "write after a wrong password",
        );
        env.sleep(Duration::from_millis(rng.between(1, 20))).await;
    }
}

/// What the guest's last RESP request echoes.
const GUEST_DONE: &str = "guest-done";

/// Reads from `stream` until `marker` has arrived, the stream ends, or
/// the life does.
async fn drain_until(env: &SimEnv, life: &Life, stream: &mut SimStream, marker: &[u8]) {
    let mut seen: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    while !life.over() {
        let read = std::pin::pin!(stream.read(&mut buffer));
        let tick = std::pin::pin!(env.sleep(Duration::from_millis(50)));
        match select(read, tick).await {
            Either::Left((Ok(0) | Err(_), _)) => return,
            Either::Left((Ok(n), _)) => {
                seen.extend_from_slice(&buffer[..n]);
                if seen.windows(marker.len()).any(|window| window == marker) {
                    return;
                }
            }
            Either::Right(_) => {}
        }
    }
}

/// The guest's attempts in Redis's words: a forbidden key alone, second
/// in an `MSET` and in a `MULTI` block, and `FLUSHALL` (`@dangerous`).
fn guest_requests(rng: &mut SimRng) -> Vec<u8> {
    let word = |text: &str| text.as_bytes().to_vec();
    let forbidden = format!("intruder-{}", rng.below(1000));
    let allowed = format!("guest-{}", rng.below(1000));
    encode(&[
        vec![word("AUTH"), word(GUEST_USER), GUEST_PASSWORD.to_vec()],
        vec![word("SET"), word(&forbidden), word("5")],
        vec![
            word("MSET"),
            word(&allowed),
            word("1"),
            word(&forbidden),
            word("6"),
        ],
        vec![word("MULTI")],
        vec![word("SET"), word(&allowed), word("2")],
        vec![word("SET"), word(&forbidden), word("7")],
        vec![word("EXEC")],
        vec![word("FLUSHALL")],
        vec![word("ECHO"), word(GUEST_DONE)],
    ])
}

/// How long the server may take to close a hostile connection: the frame
/// timeout and the server's look at the clock, the network's latency both
/// ways (hostile nodes are never partitioned), and slack for a busy
/// executor.
fn close_bound(shape: &Shape) -> Duration {
    Duration::from_millis(2 * shape.hostility.frame_timeout_ms + 15)
}

/// Connects to the native listener, or with `resp` to the RESP one.
async fn connect(env: &SimEnv, life: &Life, resp: bool) -> Option<SimStream> {
    let addr = if resp {
        super::resp_addr()
    } else {
        super::server_addr()
    };
    loop {
        if life.over() {
            return None;
        }
        match env.connect(addr).await {
            Ok(stream) => return Some(stream),
            Err(_) => env.sleep(Duration::from_millis(5)).await,
        }
    }
}

/// GETs of one account in one request: a small request for a large answer.
const GETS_PER_REQUEST: u64 = 1_000;

/// Pipelines requests for large answers (one account, read a thousand
/// times) on one connection and never reads; reconnects when the server
/// closes it, until the life ends.
pub(super) async fn non_reader(env: SimEnv, shape: Arc<Shape>, life: Life, mut rng: SimRng) {
    let mut greedy = Txn::new();
    let account = greedy.key(
        account_key(shape.account(&mut rng, shape.accounts())),
        Mode::R,
    );
    for _ in 0..GETS_PER_REQUEST {
        greedy.get(account);
    }
    // The same greed in Redis's words: one MGET of the account, a
    // thousand times over.
    let mut mget = vec![b"MGET".to_vec()];
    mget.extend(std::iter::repeat_n(
        greedy.keys()[0].2.clone(),
        GETS_PER_REQUEST as usize,
    ));
    let mget = encode(&[mget]);
    let mut id = 1u64;
    loop {
        let resp = rng.chance(0.5);
        let Some(mut stream) = connect(&env, &life, resp).await else {
            return;
        };
        loop {
            if life.over() {
                return;
            }
            let frame = if resp {
                mget.clone()
            } else {
                jubilant_client::txn_request_frame(id, &greedy)
            };
            id += 1;
            if stream.write_all(&frame).await.is_err() {
                break;
            }
            env.sleep(Duration::from_micros(rng.between(1, 200))).await;
        }
    }
}

/// Waits until the server closes `stream` (EOF, or an error), reading and
/// discarding whatever it says first; false if `bound` passed first while
/// the life went on.
async fn closed_within(env: &SimEnv, stream: &mut SimStream, bound: Duration, life: &Life) -> bool {
    let deadline: MonoTime = env.now_mono() + bound;
    let mut buffer = [0u8; 4096];
    loop {
        let now = env.now_mono();
        if now >= deadline {
            return life.over();
        }
        let read = std::pin::pin!(stream.read(&mut buffer));
        let timer = std::pin::pin!(env.sleep(deadline.saturating_since(now)));
        match select(read, timer).await {
            Either::Left((Ok(0) | Err(_), _)) => return true,
            Either::Left((Ok(_), _)) => {}
            Either::Right(_) => return life.over(),
        }
    }
}

fn judge(model: &Model, what: &str, closed: bool, bound: Duration) {
    let mut m = lock(model);
    m.verdict.check("hostile_closed", 1);
    if !closed {
        m.verdict.fail(
            "hostile_closed",
            format!("the server did not close a {what} within {bound:?}"),
        );
    }
}

/// Sends half a frame (a length, and a few of its bytes) and then
/// nothing; the server must close the connection. Repeats until the life
/// ends.
pub(super) async fn trickler(
    env: SimEnv,
    shape: Arc<Shape>,
    model: Model,
    life: Life,
    mut rng: SimRng,
) {
    let bound = close_bound(&shape);
    loop {
        let resp = rng.chance(0.5);
        let Some(mut stream) = connect(&env, &life, resp).await else {
            return;
        };
        let len = rng.between(8, 200) as u32;
        let mut partial = if resp {
            // A RESP request announcing a value it never finishes.
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes()
        } else {
            len.to_le_bytes().to_vec()
        };
        partial.extend(std::iter::repeat_n(0u8, rng.below(u64::from(len)) as usize));
        if stream.write_all(&partial).await.is_err() {
            continue;
        }
        let closed = closed_within(&env, &mut stream, bound, &life).await;
        if life.over() {
            return;
        }
        judge(&model, "connection that sent half a frame", closed, bound);
        if !closed {
            return;
        }
    }
}

/// Opens `count` connections at once, each sending 3 bytes; every one
/// must be closed (told `TooManyConnections`, or timed out mid-frame).
pub(super) async fn crowd(env: SimEnv, shape: Arc<Shape>, model: Model, life: Life, count: u64) {
    let bound = close_bound(&shape);
    let mut streams = Vec::new();
    for n in 0..count {
        // Every other one to the RESP listener (3 bytes of a request too).
        let resp = n % 2 == 1;
        let Some(mut stream) = connect(&env, &life, resp).await else {
            return;
        };
        let bytes: &[u8] = if resp { b"*1\r" } else { &[7, 0, 0] };
        if stream.write_all(bytes).await.is_ok() {
            streams.push(stream);
        }
    }
    for mut stream in streams {
        let closed = closed_within(&env, &mut stream, bound, &life).await;
        if life.over() {
            return;
        }
        judge(&model, "connection of a crowd", closed, bound);
    }
}

/// The server's keepalive time in the server workload (milliseconds).
pub(super) const KEEPALIVE_MS: u64 = 20;

/// Connects, sends a request, and vanishes; the server must drop its end
/// once keepalive finds the peer gone. Repeats until the life ends.
pub(super) async fn vanisher(env: SimEnv, model: Model, life: Life, mut rng: SimRng) {
    // Keepalive finds it; the server's reader notices within its tick; the
    // writer then finishes (writes to a vanished peer are swallowed) and
    // drops the connection.
    let bound = Duration::from_millis(KEEPALIVE_MS + 60);
    loop {
        let resp = rng.chance(0.5);
        let Some(mut stream) = connect(&env, &life, resp).await else {
            return;
        };
        env.sleep(Duration::from_micros(rng.between(1, 2_000)))
            .await;
        let request = if resp {
            encode(&[vec![b"GET".to_vec(), account_key(0)]])
        } else {
            let mut ping = Txn::new();
            let account = ping.key(account_key(0), Mode::R);
            ping.get(account);
            jubilant_client::txn_request_frame(1, &ping)
        };
        if stream.write_all(&request).await.is_err() {
            continue;
        }
        stream.vanish();
        let deadline = env.now_mono() + bound;
        while !stream.peer_dropped() {
            if life.over() {
                return;
            }
            if env.now_mono() >= deadline {
                let mut m = lock(&model);
                m.verdict.check("vanished_dropped", 1);
                m.verdict.fail(
                    "vanished_dropped",
                    format!("the server still held a vanished client's connection after {bound:?}"),
                );
                return;
            }
            env.sleep(Duration::from_millis(5)).await;
        }
        lock(&model).verdict.check("vanished_dropped", 1);
    }
}
