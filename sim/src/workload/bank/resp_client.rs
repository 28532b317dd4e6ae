//! The server workload's RESP clients: bank transfers as Redis clients
//! write them, over the simulated network to the server's RESP listener:
//!
//! ```text
//! WATCH from to; GET from; GET to          (pipelined; half the time)
//! MULTI; INCRBY from -n; INCRBY to n; EXEC (pipelined)
//! ```
//!
//! and audits as one `MGET` of every account. Replies are read with the
//! `redis-protocol` crate, as a client library would.
//!
//! What they let the model check, beside its history-based oracles
//! (which hold for every commit, whoever sent it):
//! - `serializability`: an `EXEC` that ran answers exactly the balances
//!   read before it, moved by the amount (or `WATCH` let a change through),
//!   and the commit it made is in the engine's history, where the replay
//!   reproduces its results;
//! - `durability`: that commit, answered under `sync`, survives every crash;
//! - `conservation`: every `MGET` audit sums the balances to the total;
//! - order: an `MGET` pipelined right after the `EXEC` sees a state at or
//!   after the `EXEC`'s commit (`serializability`).

use std::time::Duration;

use futures::FutureExt;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use jubilant_core::db::Durability;
use jubilant_core::env::Clock;
use jubilant_core::mutex::lock;
use jubilant_io_sim::{SimEnv, SimRng, SimStream};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use super::super::lives::think;
use super::client::BankClient;
use super::conn::Failure;
use super::resp_addr;
use super::shape::{account_key, audit};

/// A RESP connection that redials after it is lost.
struct RespConn {
    env: SimEnv,
    timeout: Duration,
    stream: Option<SimStream>,
    buffer: Vec<u8>,
    /// The class `JUBILANT.DURABILITY` set on this connection.
    durability: Durability,
    /// Whether to authenticate each connection first (a world with users).
    authenticate: bool,
}

/// Writes `commands` as RESP arrays of bulk strings.
pub(super) fn encode(commands: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for args in commands {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn command(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.to_vec()).collect()
}

/// What a RESP error reply means for the bank.
fn failure(text: &str) -> Failure {
    if text == "ERR max number of clients reached" {
        // The hostile crowd holds every slot; the server closes this one.
        Failure::NoEffect("connections_refused")
    } else if text.starts_with("BUSY") {
        Failure::NoEffect("busy")
    } else if text.starts_with("MISCONF the disk is full") {
        Failure::NoEffect("commits_disk_full")
    } else if text.starts_with("TRYAGAIN") {
        Failure::NoEffect("commits_unavailable")
    } else if text.starts_with("ERR the server is shutting down") {
        Failure::NoEffect("shutting_down")
    } else if text.starts_with("MISCONF storage failed") {
        Failure::Engine {
            message: text.to_owned(),
            corruption: false,
            storage: true,
        }
    } else if text.starts_with("ERR corrupt data") {
        Failure::Engine {
            message: text.to_owned(),
            corruption: true,
            storage: false,
        }
    } else {
        Failure::Refused(format!("RESP error: {text}"))
    }
}

impl RespConn {
    async fn stream(&mut self, rng: &mut SimRng) -> Result<&mut SimStream, Failure> {
        if self.stream.is_none() {
            let stream = self
                .env
                .connect(resp_addr())
                .await
                .map_err(|error| Failure::Unreachable(format!("connect: {error}")))?;
            self.stream = Some(stream);
            self.buffer.clear();
            if self.authenticate {
                let reply = self
                    .call(&[command(&[
                        b"AUTH",
                        super::hostile::BANK_USER.as_bytes(),
                        super::hostile::BANK_PASSWORD,
                    ])])
                    .await?;
                if !matches!(reply.as_slice(), [OwnedFrame::SimpleString(ok)] if ok == b"OK") {
                    self.stream = None;
                    return Err(Failure::Unreachable(format!("AUTH answered {reply:?}")));
                }
            }
            // Each connection picks its class, as an application would.
            let (word, durability): (&[u8], _) = if rng.chance(0.5) {
                (b"sync", Durability::Sync)
            } else {
                (b"async", Durability::Async)
            };
            let reply = self
                .call(&[command(&[b"JUBILANT.DURABILITY", word])])
                .await?;
            match reply.as_slice() {
                [OwnedFrame::SimpleString(class)] if class == word => {}
                [OwnedFrame::Error(text)] => {
                    self.stream = None;
                    return Err(failure(text));
                }
                other => {
                    return Err(Failure::Refused(format!(
                        "JUBILANT.DURABILITY answered {other:?}"
                    )));
                }
            }
            self.durability = durability;
        }
        self.stream
            .as_mut()
            .ok_or_else(|| Failure::Unreachable("no connection".to_owned()))
    }

    /// Sends `commands` in one write and reads one reply each; a lost or
    /// late answer drops the connection.
    async fn call(&mut self, commands: &[Vec<Vec<u8>>]) -> Result<Vec<OwnedFrame>, Failure> {
        let timeout = self.timeout;
        let env = self.env.clone();
        let answer = futures::select! {
            answer = self.exchange(commands).fuse() => answer,
            () = env.sleep(timeout).fuse() => {
                Err(Failure::Unknown(format!("no answer within {timeout:?}")))
            }
        };
        if matches!(answer, Err(Failure::Unknown(_))) {
            self.stream = None;
        }
        answer
    }

    async fn exchange(&mut self, commands: &[Vec<Vec<u8>>]) -> Result<Vec<OwnedFrame>, Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Unreachable("no connection".to_owned()));
        };
        stream
            .write_all(&encode(commands))
            .await
            .map_err(|error| Failure::Unknown(format!("write: {error}")))?;
        let mut replies = Vec::new();
        let mut chunk = vec![0u8; 4096];
        while replies.len() < commands.len() {
            match decode(&self.buffer) {
                Ok(Some((frame, used))) => {
                    self.buffer.drain(..used);
                    replies.push(frame);
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(Failure::Refused(format!("unreadable reply: {error:?}")));
                }
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|error| Failure::Unknown(format!("read: {error}")))?;
            if n == 0 {
                return Err(Failure::Unknown(
                    "the server closed the connection".to_owned(),
                ));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        Ok(replies)
    }
}

/// A balance as `GET` answers it (missing: 0).
fn balance(frame: &OwnedFrame) -> Result<i64, Failure> {
    match frame {
        OwnedFrame::Null => Ok(0),
        OwnedFrame::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Failure::Refused(format!("a balance reads {bytes:?}"))),
        OwnedFrame::Error(text) => Err(failure(text)),
        other => Err(Failure::Refused(format!("GET answered {other:?}"))),
    }
}

fn expect_ok(frame: &OwnedFrame, status: &[u8]) -> Result<(), Failure> {
    match frame {
        OwnedFrame::SimpleString(text) if text == status => Ok(()),
        OwnedFrame::Error(text) => Err(failure(text)),
        other => Err(Failure::Refused(format!(
            "expected {}, got {other:?}",
            String::from_utf8_lossy(status)
        ))),
    }
}

/// One RESP client: transfers and audits until its life ends.
pub(super) async fn resp_client_task(mut bank: BankClient, mut rng: SimRng) {
    let mut conn = RespConn {
        env: bank.env.clone(),
        timeout: Duration::from_millis(bank.shape.answer_timeout_ms),
        stream: None,
        buffer: Vec::new(),
        durability: Durability::Sync,
        authenticate: bank.shape.hostility.users,
    };
    loop {
        think(&bank.env, &mut rng, bank.shape.think_us_max).await;
        if bank.stopped() {
            return;
        }
        let outcome = if rng.below(100) < bank.shape.audit_pct {
            resp_audit(&mut conn, &mut bank, &mut rng).await
        } else {
            resp_transfer(&mut conn, &mut bank, &mut rng).await
        };
        if let Err(failure) = outcome
            && !bank.failed("RESP command", failure).await
        {
            return;
        }
    }
}

async fn resp_audit(
    conn: &mut RespConn,
    bank: &mut BankClient,
    rng: &mut SimRng,
) -> Result<(), Failure> {
    let keys: Vec<Vec<u8>> = audit(&bank.shape)
        .keys()
        .iter()
        .map(|(_, _, key)| key.clone())
        .collect();
    let mut mget = vec![b"MGET".to_vec()];
    mget.extend(keys);
    conn.stream(rng).await?;
    let reply = conn.call(&[mget]).await?;
    let total = match reply.first() {
        Some(OwnedFrame::Array(balances)) => {
            balances.iter().map(balance).sum::<Result<i64, Failure>>()?
        }
        Some(OwnedFrame::Error(text)) => return Err(failure(text)),
        other => return Err(Failure::Refused(format!("MGET answered {other:?}"))),
    };
    if bank.life.over() {
        lock(&bank.model).verdict.stat("stale_answers", 1);
        return Ok(());
    }
    let mut m = lock(&bank.model);
    m.resp_audit(total);
    m.verdict.stat("resp_audits", 1);
    Ok(())
}

async fn resp_transfer(
    conn: &mut RespConn,
    bank: &mut BankClient,
    rng: &mut SimRng,
) -> Result<(), Failure> {
    let shape = &bank.shape;
    let universe = shape.accounts();
    let a = shape.account(rng, universe);
    let b = (a + 1 + rng.below(universe - 1)) % universe;
    let (from, to) = (account_key(a), account_key(b));
    let amount = rng.between(1, 100) as i64;
    conn.stream(rng).await?;
    // Half are blind: no WATCH, so the block's own reads (INCRBY reads
    // before it writes) are all that keeps it serializable.
    let watched = if rng.chance(0.5) {
        let read = conn
            .call(&[
                command(&[b"WATCH", &from, &to]),
                command(&[b"GET", &from]),
                command(&[b"GET", &to]),
            ])
            .await?;
        expect_ok(&read[0], b"OK")?;
        Some((balance(&read[1])?, balance(&read[2])?))
    } else {
        None
    };
    let minus = (-amount).to_string().into_bytes();
    let plus = amount.to_string().into_bytes();
    // The MGET pipelined after EXEC must see its effect (or a later state):
    // one connection's commands take effect in the order sent.
    let ran = conn
        .call(&[
            command(&[b"MULTI"]),
            command(&[b"INCRBY", &from, &minus]),
            command(&[b"INCRBY", &to, &plus]),
            command(&[b"EXEC"]),
            command(&[b"MGET", &from, &to]),
        ])
        .await?;
    let after = match &ran[4] {
        OwnedFrame::Array(balances) if balances.len() == 2 => {
            (balance(&balances[0])?, balance(&balances[1])?)
        }
        OwnedFrame::Error(text) => return Err(failure(text)),
        other => return Err(Failure::Refused(format!("MGET answered {other:?}"))),
    };
    expect_ok(&ran[0], b"OK")?;
    expect_ok(&ran[1], b"QUEUED")?;
    expect_ok(&ran[2], b"QUEUED")?;
    let (new_from, new_to) = match &ran[3] {
        OwnedFrame::Null => {
            lock(&bank.model).verdict.stat("watch_aborts", 1);
            return Ok(());
        }
        OwnedFrame::Array(results) => match results.as_slice() {
            [OwnedFrame::Integer(f), OwnedFrame::Integer(t)] => (*f, *t),
            [OwnedFrame::Error(text), _] | [_, OwnedFrame::Error(text)] => {
                return Err(failure(text));
            }
            other => return Err(Failure::Refused(format!("EXEC answered {other:?}"))),
        },
        OwnedFrame::Error(text) => return Err(failure(text)),
        other => return Err(Failure::Refused(format!("EXEC answered {other:?}"))),
    };
    if bank.life.over() {
        lock(&bank.model).verdict.stat("stale_answers", 1);
        return Ok(());
    }
    let mut m = lock(&bank.model);
    m.verdict.check("serializability", 1);
    if let Some((seen_from, seen_to)) = watched
        && (new_from, new_to) != (seen_from - amount, seen_to + amount)
    {
        m.verdict.fail(
            "serializability",
            format!(
                "EXEC moved {amount} from {seen_from} and to {seen_to} (as read after WATCH) \
                 yet answered {new_from} and {new_to}: a watched key changed and EXEC ran anyway"
            ),
        );
        return Ok(());
    }
    if let Some(lsn) = m.resp_transfer_acked(&from, new_from, &to, new_to, amount, conn.durability)
    {
        m.resp_read_after(lsn, &[(&from, after.0), (&to, after.1)]);
    }
    m.verdict.stat("resp_transfers", 1);
    Ok(())
}
