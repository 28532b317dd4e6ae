//! One RESP connection: read requests, run them in order, write replies in
//! order (the invariants are in the module above).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::channel::{mpsc, oneshot};
use futures::future::{Either, select};
use futures::io::AsyncReadExt;
use jubilant_core::env::{Env, MonoTime};
use jubilant_core::mutex::lock;
use jubilant_core::txn::{LockPoint, ResultMeter};

use super::command::Command;
use super::exec::{self, Ctx, Ran};
use super::keyspace_wide;
use super::reply::Reply;
use super::request::RequestParser;
use super::session::{Action, Session, durability_name, noperm};
use crate::accounting::{ConnCounters, InFlight, Outgoing, ServerCounters};
use crate::acl::{Access, Acl};
use crate::audit::{Event, Via, Who};
use crate::info;
use crate::runtime::{
    BACKPRESSURE_POLL, READ_CHUNK_BYTES, ReaderClock, Shared, run_or_spawn, sabotaged,
    write_responses,
};
use jubilant_core::sabotage::Sabotage;

/// Replies finished out of order, written in order.
struct InOrder {
    next: u64,
    waiting: BTreeMap<u64, Outgoing>,
    out: mpsc::UnboundedSender<Outgoing>,
}

impl InOrder {
    fn deliver(order: &Mutex<InOrder>, seq: u64, outgoing: Outgoing) {
        let mut order = lock(order);
        order.waiting.insert(seq, outgoing);
        loop {
            let next = order.next;
            let Some(outgoing) = order.waiting.remove(&next) else {
                break;
            };
            // Fails only once the writer is gone (the peer left).
            let _ = order.out.unbounded_send(outgoing);
            order.next += 1;
        }
    }
}

/// What a spawned command needs.
struct Job<E: Env> {
    shared: Arc<Shared<E>>,
    conn: Arc<ConnCounters>,
    order: Arc<Mutex<InOrder>>,
    seq: u64,
    conn_id: u64,
    resp3: bool,
    durability: Option<jubilant_core::db::Durability>,
    /// The user's rules when the command was read (`None`: no users).
    acl: Option<Arc<Acl>>,
    /// The connection's user and address, for the audit log.
    who: (Option<String>, SocketAddr),
    in_flight: InFlight,
}

impl<E: Env> Job<E> {
    fn finish(mut self, reply: &Reply) {
        self.in_flight.request_done();
        ServerCounters::count(&self.shared.resp.commands);
        let mut bytes = Vec::new();
        reply.encode(self.resp3, &mut bytes);
        let outgoing = Outgoing::new(
            bytes,
            &self.shared.counters,
            &self.conn,
            Some(self.in_flight),
        );
        InOrder::deliver(&self.order, self.seq, outgoing);
    }

    async fn run(self, action: Action, point: Arc<LockPoint>) {
        let shared = Arc::clone(&self.shared);
        let began = shared.env.now_mono();
        let meter = meter_for(&shared, &self.conn);
        let ctx = ctx(&shared, &meter, self.conn_id, self.durability);
        let reply = match action {
            Action::Data(command) => exec::run_one(&ctx, &command, &point).await,
            Action::Exec { entries, watched } => {
                let commands: Vec<_> = entries
                    .iter()
                    .filter_map(|entry| entry.as_ref().ok().cloned())
                    .collect();
                match exec::run_block(&ctx, &commands, &watched).await {
                    Ok(Ran::Aborted) => Reply::NilArray,
                    Ok(Ran::Replies(replies)) => {
                        let mut replies = replies.into_iter();
                        Reply::Array(
                            entries
                                .into_iter()
                                .map(|entry| match entry {
                                    Ok(_) => replies.next().unwrap_or(Reply::Nil),
                                    Err(known) => known,
                                })
                                .collect(),
                        )
                    }
                    Err(reply) => reply,
                }
            }
            Action::Server(command) => self.server_command(command).await,
            Action::Reply(reply) | Action::Close(reply) => reply,
            Action::Watch(_) => Reply::err("WATCH runs on the connection"),
            Action::Auth { .. } | Action::NoAuth(_) | Action::Denied(_) => {
                Reply::err("authentication runs on the connection")
            }
        };
        if matches!(reply, Reply::Error(ref text) if text.contains("limits.response_bytes_max")) {
            ServerCounters::count(&shared.counters.responses_too_large);
        }
        drop(point);
        shared
            .latencies
            .requests
            .observe(crate::runtime::seconds_since(&shared.env, began));
        self.finish(&reply);
    }

    /// Audits administrative command `name`, which answered `reply`.
    fn audit_admin(&self, name: &'static str, reply: &Reply) {
        let (user, peer) = &self.who;
        let who = resp(user.as_deref().unwrap_or_default(), *peer);
        self.shared
            .audit(Event::Admin, who, (name, None), outcome(reply));
    }

    /// Whether the connection's user may read `key` (no ACL: yes).
    fn readable(&self, key: &[u8]) -> bool {
        self.acl
            .as_ref()
            .is_none_or(|acl| acl.allows_key(key, Access::Read))
    }

    async fn server_command(&self, command: Command) -> Reply {
        let shared = &self.shared;
        let db = &shared.db;
        let default = shared.config.storage.durability.into();
        match command {
            Command::Scan {
                cursor,
                pattern,
                count,
                type_name,
            } => {
                keyspace_wide::scan(
                    db,
                    &shared.resp,
                    (cursor, pattern.as_deref(), count, type_name.as_deref()),
                    &|key| self.readable(key),
                )
                .await
            }
            Command::Keys(pattern) => {
                let max = shared.config.limits.response_bytes_max;
                keyspace_wide::keys(db, &pattern, max, &|key| self.readable(key)).await
            }
            Command::DbSize => keyspace_wide::dbsize(db),
            Command::Flush if !shared.config.resp.flush_enabled => Reply::err(
                "FLUSHDB and FLUSHALL are disabled on this server (resp.flush_enabled = false)",
            ),
            Command::Flush => {
                let reply = keyspace_wide::flush(db, self.durability.unwrap_or(default)).await;
                self.audit_admin("flushall", &reply);
                reply
            }
            Command::Info(sections) => {
                let mut text = info::render(&db.stats(), shared.facts());
                text.push_str(&format!(
                    "# Connection\nprotocol:resp{}\ndurability:{}\n",
                    if self.resp3 { 3 } else { 2 },
                    durability_name(self.durability.unwrap_or(default))
                ));
                keyspace_wide::info(&text, &sections)
            }
            Command::Command(args) => keyspace_wide::command(&args),
            Command::ConfigGet(patterns) => {
                let reply = keyspace_wide::config_get(&patterns, default);
                self.audit_admin("config", &reply);
                reply
            }
            other => Reply::err(format!("{other:?} is not served here")),
        }
    }
}

/// `user` on the RESP connection from `peer`, for the audit log.
fn resp(user: &str, peer: SocketAddr) -> Who<'_> {
    Who {
        user,
        client: peer,
        listener: Via::Resp,
    }
}

/// An administrative command's outcome, as the audit log says it.
fn outcome(reply: &Reply) -> String {
    match reply {
        Reply::Error(text) => text.clone(),
        _ => "ok".to_owned(),
    }
}

/// Serves one RESP connection until the peer closes it, `QUIT`, lost
/// framing, a timeout, or shutdown.
pub(crate) async fn connection<E: Env>(
    shared: Arc<Shared<E>>,
    stream: E::Stream,
    peer: SocketAddr,
) {
    let (mut reader, writer) = stream.split();
    let counters = Arc::clone(&shared.counters);
    shared.resp.connections.fetch_add(1, Ordering::AcqRel);
    // Broken on purpose: answers queue without bound.
    let conn = Arc::new(ConnCounters::new(
        if sabotaged(&shared.config, Sabotage::UnboundedAnswerQueue) {
            u64::MAX
        } else {
            shared.config.server.connection_queue_bytes_max
        },
    ));
    let (out, outgoing) = mpsc::unbounded::<Outgoing>();
    let order = Arc::new(Mutex::new(InOrder {
        next: 0,
        waiting: BTreeMap::new(),
        out,
    }));
    let writing = shared.env.spawn(
        "resp-writer",
        write_responses(Arc::clone(&shared), Arc::clone(&conn), writer, outgoing),
    );
    let default_durability = shared.config.storage.durability.into();
    // Broken on purpose (tests only): no connection must authenticate.
    let must_authenticate =
        shared.auth.required() && !sabotaged(&shared.config, Sabotage::AuthSkipped);
    let mut session = Session::new(shared.resp.client_id(), must_authenticate);
    let mut parser = RequestParser::new(u64::from(shared.config.limits.frame_bytes_max));
    let ReaderClock {
        frame_timeout,
        idle_timeout,
        tick,
    } = ReaderClock::new(&shared.config);
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut request_began: Option<MonoTime> = None;
    let mut last_request = shared.env.now_mono();
    let mut seq = 0u64;
    // Request bytes reserved for what the parser holds or was announced.
    let mut reserved = 0u64;
    // The previous command's turn: the next may start once it resolves
    // (lock point reached, or answered).
    let mut turn: Option<oneshot::Receiver<()>> = None;
    // The connection's user's rules, looked up for each command.
    let mut acl: Option<Arc<Acl>> = None;
    let send_now = |seq: u64, reply: &Reply, resp3: bool, in_flight: Option<InFlight>| {
        let mut bytes = Vec::new();
        reply.encode(resp3, &mut bytes);
        InOrder::deliver(
            &order,
            seq,
            Outgoing::new(bytes, &counters, &conn, in_flight),
        );
    };
    'reading: loop {
        loop {
            if conn.peer_gone() {
                break 'reading;
            }
            let request = match parser.next_request() {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(error) => {
                    ServerCounters::count(&shared.resp.protocol_errors);
                    tracing::info!(%peer, %error, "RESP framing lost; closing the connection");
                    send_now(seq, &Reply::err(&error), session.resp3, None);
                    break 'reading;
                }
            };
            // Backpressure: a whole request waits for room, and nothing
            // more is read meanwhile, so the kernel pushes back on the
            // client. A request still arriving is read on (its bytes are
            // reserved below), so its clock never waits on the server.
            while shared.must_wait(&conn) {
                if shared.stopping.load(Ordering::Acquire) || conn.peer_gone() {
                    break 'reading;
                }
                shared.env.sleep(BACKPRESSURE_POLL).await;
            }
            let now = shared.env.now_mono();
            last_request = now;
            request_began = parser.mid_request().then_some(now);
            if let Some(previous) = turn.take()
                && !sabotaged(&shared.config, Sabotage::RespUnordered)
            {
                let _ = previous.await;
            }
            counters.requests.take(request.wire_bytes);
            let mut in_flight = InFlight::begin(&counters, &conn, request.wire_bytes);
            let this = seq;
            seq += 1;
            // A failed database answers nothing but INFO, HELLO and QUIT:
            // what it would read may include commits that never became
            // durable (design 9.3).
            let action = match shared.db.failure() {
                Some(reason) if !answered_when_failed(&request.args) => Action::Reply(
                    exec::db_error(&jubilant_core::db::DbError::StorageFailed(reason)),
                ),
                _ => {
                    // The user's rules as they are now: a reload may have
                    // changed them, or removed the user.
                    acl = None;
                    if must_authenticate && let Some(user) = &session.user {
                        acl = shared.auth.acl(user);
                        if acl.is_none() {
                            session.forget_user();
                        }
                    }
                    session.handle(request.args, default_durability, acl.as_deref())
                }
            };
            let action = match action {
                Action::Auth {
                    user,
                    password,
                    hello,
                } => {
                    // Runs here: the next command is checked against it.
                    // A failure delay may hold it for seconds: it holds
                    // this connection, but none of the server's in-flight
                    // slots (seed server 1808: two intruders in their
                    // delays stalled every connection).
                    in_flight.request_done();
                    let verified = shared
                        .auth
                        .authenticate(&shared.env, peer.ip(), (&user, &password), &shared.stopping)
                        .await;
                    let reply = if verified {
                        tracing::info!(%peer, user, "authenticated (RESP)");
                        shared.audit(Event::AuthOk, resp(&user, peer), ("auth", None), "ok");
                        session.authenticated(user);
                        match hello {
                            Some((version, name)) => session.hello_as(version, name),
                            None => Reply::Ok,
                        }
                    } else {
                        tracing::info!(%peer, user, "authentication failed (RESP)");
                        let text = "WRONGPASS invalid username-password pair or user is disabled.";
                        shared.audit(Event::AuthFailed, resp(&user, peer), ("auth", None), text);
                        Reply::Error(text.into())
                    };
                    Action::Reply(reply)
                }
                Action::NoAuth(reply) => {
                    shared.auth.refused();
                    Action::Reply(reply)
                }
                Action::Denied(denied) => {
                    let user = session.user.as_deref().unwrap_or_default();
                    shared.auth.denied();
                    tracing::info!(%peer, user, ?denied, "denied by an ACL (RESP)");
                    let reply = noperm(user, &denied);
                    let text = match &reply {
                        Reply::Error(text) => text.as_str(),
                        _ => "NOPERM",
                    };
                    let who = resp(user, peer);
                    shared.audit(Event::Denied, who, denied.command_and_key(), text);
                    Action::Reply(reply)
                }
                Action::Server(Command::Acl(command)) => {
                    // Runs here: it answers from the session's user.
                    let user = session.user.as_deref();
                    let reply = super::acl::answer(&shared.auth, user, &command);
                    if let Some(name) = command.admin_name() {
                        let who = resp(user.unwrap_or_default(), peer);
                        shared.audit(Event::Admin, who, (name, None), outcome(&reply));
                    }
                    Action::Reply(reply)
                }
                Action::Watch(keys) => {
                    // Runs here: what it read must be in the session before
                    // the next command.
                    let reply = watch(&shared, &conn, &session, &keys).await;
                    let reply = match reply {
                        Ok(revisions) => {
                            session.watched(revisions);
                            Reply::Ok
                        }
                        Err(reply) => reply,
                    };
                    Action::Reply(reply)
                }
                action => action,
            };
            match action {
                Action::Reply(reply) => {
                    in_flight.request_done();
                    ServerCounters::count(&shared.resp.commands);
                    send_now(this, &reply, session.resp3, Some(in_flight));
                }
                Action::Close(reply) => {
                    in_flight.request_done();
                    send_now(this, &reply, session.resp3, Some(in_flight));
                    break 'reading;
                }
                action => {
                    let (point, told) = LockPoint::new();
                    turn = Some(told);
                    let job = Job {
                        shared: Arc::clone(&shared),
                        conn: Arc::clone(&conn),
                        order: Arc::clone(&order),
                        seq: this,
                        conn_id: session.id,
                        resp3: session.resp3,
                        durability: session.durability,
                        acl: acl.clone(),
                        who: (session.user.clone(), peer),
                        in_flight,
                    };
                    run_or_spawn(
                        &shared.env,
                        "resp-command",
                        job.run(action, Arc::new(point)),
                    );
                }
            }
        }
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        parser.shrink();
        // Reserve what the parser holds and was told is coming before
        // reading on: the server reads no more request bytes than its
        // budget (and one read per connection).
        let claim = parser.claim();
        if claim < reserved {
            counters.requests.give_back(reserved - claim);
            reserved = claim;
        } else if claim > reserved {
            let want = claim - reserved;
            let waiting_since = shared.env.now_mono();
            while !counters.requests.try_take(want) {
                if shared.stopping.load(Ordering::Acquire) || conn.peer_gone() {
                    break 'reading;
                }
                if shared.env.now_mono().saturating_since(waiting_since) >= frame_timeout {
                    // Partly read requests hold the whole budget: this
                    // one gives way rather than wait forever.
                    ServerCounters::count(&counters.frame_timeouts);
                    let reply = Reply::err(
                        "the server's request budget stayed full (server.request_bytes_total_max); try again",
                    );
                    send_now(seq, &reply, session.resp3, None);
                    break 'reading;
                }
                shared.env.sleep(BACKPRESSURE_POLL).await;
            }
            reserved = claim;
            if request_began.is_some() {
                // Its clock does not run while the server makes it wait.
                request_began = Some(shared.env.now_mono());
            }
        }
        let read = {
            let read = pin!(reader.read(&mut buffer));
            let tick = pin!(shared.env.sleep(tick));
            match select(read, tick).await {
                Either::Left((read, _)) => read,
                Either::Right(_) => {
                    let now = shared.env.now_mono();
                    if request_began
                        .is_some_and(|began| now.saturating_since(began) >= frame_timeout)
                        && !sabotaged(&shared.config, Sabotage::NoFrameTimeout)
                    {
                        ServerCounters::count(&counters.frame_timeouts);
                        tracing::info!(%peer, "a RESP request did not arrive in time; closing the connection");
                        let reply = Reply::err(format!(
                            "Protocol error: a request must arrive whole within {} ms (server.frame_read_timeout_ms)",
                            frame_timeout.as_millis()
                        ));
                        send_now(seq, &reply, session.resp3, None);
                        break 'reading;
                    }
                    if let Some(idle) = idle_timeout
                        && request_began.is_none()
                        && ServerCounters::get(&conn.in_flight) == 0
                        && now.saturating_since(last_request) >= idle
                    {
                        ServerCounters::count(&counters.idle_timeouts);
                        break 'reading;
                    }
                    continue;
                }
            }
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                tracing::debug!(%peer, %error, "read failed; closing");
                conn.peer_gone.store(true, Ordering::Release);
                break;
            }
        };
        parser.extend(&buffer[..n]);
        if request_began.is_none() {
            request_began = Some(shared.env.now_mono());
        }
    }
    counters.requests.give_back(reserved);
    // The writer ends once every command has delivered its reply and all
    // of it is written (or the peer is gone, or shutdown gave up).
    drop(order);
    writing.await;
    shared.resp.connections.fetch_sub(1, Ordering::AcqRel);
    counters.connections.fetch_sub(1, Ordering::AcqRel);
    tracing::debug!(%peer, "RESP connection closed");
}

/// Whether a command is answered by a server whose database failed: the
/// ones that say so (INFO) or touch only the connection.
fn answered_when_failed(args: &[Vec<u8>]) -> bool {
    args.first().is_some_and(|name| {
        [&b"INFO"[..], b"HELLO", b"QUIT"]
            .iter()
            .any(|allowed| name.eq_ignore_ascii_case(allowed))
    })
}

async fn watch<E: Env>(
    shared: &Arc<Shared<E>>,
    conn: &Arc<ConnCounters>,
    session: &Session,
    keys: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, u64)>, Reply> {
    let meter = meter_for(shared, conn);
    let ctx = ctx(shared, &meter, session.id, session.durability);
    exec::watch(&ctx, keys).await
}

/// A fresh meter on `conn`'s and the server's answer budgets, per
/// transaction.
fn meter_for<E: Env>(
    shared: &Shared<E>,
    conn: &Arc<ConnCounters>,
) -> impl Fn() -> Arc<ResultMeter> + Send + Sync + use<E> {
    let counters = Arc::clone(&shared.counters);
    let conn = Arc::clone(conn);
    move || Arc::new(conn.meter(&counters))
}

/// What a command of connection `id` runs with.
fn ctx<'a, E: Env>(
    shared: &'a Shared<E>,
    meter: &'a (dyn Fn() -> Arc<ResultMeter> + Send + Sync),
    id: u64,
    durability: Option<jubilant_core::db::Durability>,
) -> Ctx<'a, E> {
    let config = &shared.config;
    Ctx {
        env: &shared.env,
        db: &shared.db,
        jitter: id,
        durability,
        response_bytes_max: config.limits.response_bytes_max,
        keys_max: config.limits.keys_per_txn_max,
        ops_max: config.limits.ops_per_txn_max,
        meter,
        watch_ignored: sabotaged(config, Sabotage::WatchIgnored),
        reads_unchecked: sabotaged(config, Sabotage::RespReadsUnchecked),
    }
}
