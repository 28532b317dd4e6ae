//! Real Redis clients against the real server binary's RESP listener:
//! `redis-cli` drives every command (its transcript is a snapshot, checked
//! against what Redis 7 answers), redis-py 5.2.1 runs pipelines,
//! `WATCH`/`MULTI`/`EXEC` under contention, `SCAN` under concurrent writes,
//! binary keys and RESP3 (`tests/resp/redis_py_check.py`), and
//! `redis-benchmark` runs its standard tests without an error.
//!
//! The tools come from the machine (`redis-tools`; a venv with
//! `redis==5.2.1`, see `.ci/run`). A test whose tool is missing says so
//! loudly on stderr and passes, unless `JUBILANT_REQUIRE_REDIS_TOOLS=1`
//! (as in CI), which makes it fail naming what to install.

// This test drives real processes, sockets, files and clocks.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::zombie_processes
)]

mod common;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::start_resp_server;

/// Set to `1` to turn a missing tool into a failure (CI sets it).
const REQUIRE_TOOLS: &str = "JUBILANT_REQUIRE_REDIS_TOOLS";
/// The Python interpreter with redis-py, if not the workspace's venv.
const PYTHON: &str = "JUBILANT_PYTHON";
/// What `ECHO` answers after each step of a redis-cli script, so the
/// transcript can tell which lines answer which command.
const END_OF_STEP: &str = "__end_of_step__";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A test's tool is missing: fails the test if tools are required, else
/// says loudly that it is skipped.
fn missing(tool: &str, install: &str) {
    if std::env::var(REQUIRE_TOOLS).as_deref() == Ok("1") {
        panic!(
            "{tool} is not available, and {REQUIRE_TOOLS}=1 requires it: {install} \
             (.ci/run does this)"
        );
    }
    // Straight to the process's stderr: the test harness captures
    // `eprintln!`, and this must show even when the test passes.
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED: {tool} is not available, so this test checked NOTHING.\n\
         !!! Install it: {install}\n\
         !!! ({REQUIRE_TOOLS}=1 makes this a failure, as in CI.)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
}

/// Whether `program args` runs and exits 0.
fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Whether `tool` (from redis-tools) runs; if not, see [`missing`].
fn have_redis_tool(tool: &str) -> bool {
    if runs(tool, &["--version"]) {
        return true;
    }
    missing(
        tool,
        "apt-get install redis-tools (Debian/Ubuntu; it brings redis-cli and redis-benchmark)",
    );
    false
}

/// The Python interpreter that can `import redis`, if there is one.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os(PYTHON).map_or_else(
        || workspace().join("target/redis-venv/bin/python"),
        PathBuf::from,
    );
    if runs(&python, &["-c", "import redis"]) {
        return Some(python);
    }
    missing(
        &format!("a Python with redis-py ({})", python.display()),
        "python3 -m venv target/redis-venv && target/redis-venv/bin/pip install redis==5.2.1 \
         (or point JUBILANT_PYTHON at a python that has it)",
    );
    None
}

/// The server binary with its RESP listener on a free loopback port, killed
/// when dropped (so also when a test fails).
struct Server {
    child: Child,
    resp: SocketAddr,
    native: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts it with `config` as its configuration file (TOML).
    fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config_path = dir.path().join("jubilant.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let config_arg = config_path.to_str().expect("UTF-8 path").to_owned();
        match start_resp_server(&dir.path().join("data"), &["--config", &config_arg]) {
            Ok((child, native, resp)) => Server {
                child,
                resp,
                native,
                _dir: dir,
            },
            Err((code, log)) => panic!("the server exited with {code}:\n{log}"),
        }
    }

    fn port(&self) -> String {
        self.resp.port().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with `input` on its stdin and returns what it did; kills
/// it and fails past `limit`.
fn run(command: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // Dropping it closes the pipe: end of input.
        let _ = stdin.write_all(&input);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The steps of a redis-cli script: one command a line, except that a
/// `MULTI` block up to its `EXEC` or `DISCARD` is one step; a line starting
/// with `#` is a heading for the transcript, sent nowhere.
fn steps(script: &str) -> Vec<Vec<&str>> {
    let mut steps: Vec<Vec<&str>> = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if let Some(commands) = &mut block {
            commands.push(line);
            if word == "EXEC" || word == "DISCARD" {
                steps.extend(block.take());
            }
        } else if word == "MULTI" {
            block = Some(vec![line]);
        } else {
            steps.push(vec![line]);
        }
    }
    assert!(block.is_none(), "a MULTI block in the script has no end");
    steps
}

/// Hides what differs from one run to the next in one command's answer:
/// connection ids, the server's version, INFO's figures.
fn redact(command: &str, answer: &str) -> String {
    let upper = command.to_ascii_uppercase();
    let version = format!("\"{}\"", env!("CARGO_PKG_VERSION"));
    let id = |line: &str| match line.find("(integer) ") {
        Some(at) => format!("{}(integer) <id>", &line[..at]),
        None => line.to_owned(),
    };
    if upper.starts_with("INFO SERVER") {
        let first = answer.lines().next().unwrap_or_default();
        return format!("{first}\n[the figures that follow vary]\n");
    }
    if upper == "CLIENT ID" {
        return answer.lines().map(|line| id(line) + "\n").collect();
    }
    if upper.starts_with("HELLO") {
        let mut out = String::new();
        let mut after_id = false;
        for line in answer.lines() {
            let line = line.replace(&version, "\"<version>\"");
            // RESP2: `7) "id"` then `8) (integer) N`; RESP3: `4# "id" => (integer) N`.
            let line = if after_id || line.contains("\"id\" =>") {
                id(&line)
            } else {
                line
            };
            after_id = line.ends_with(") \"id\"");
            out.push_str(&line);
            out.push('\n');
        }
        return out;
    }
    answer.to_owned()
}

/// Runs `script` through one `redis-cli --no-raw` session fed on stdin
/// (types shown, bytes escaped) and returns the transcript: each command
/// after `> `, then what redis-cli printed for it.
fn transcript(port: &str, script: &str) -> String {
    let steps = steps(script);
    let mut input = String::new();
    for step in &steps {
        for command in step.iter().filter(|c| !c.starts_with('#')) {
            input.push_str(command);
            input.push('\n');
        }
        input.push_str(&format!("ECHO {END_OF_STEP}\n"));
    }
    let output = run(
        Command::new("redis-cli").args(["--no-raw", "-h", "127.0.0.1", "-p", port]),
        input.as_bytes(),
        Duration::from_secs(120),
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "redis-cli failed ({}):\n{stdout}\n{}",
        output.status,
        text(&output.stderr)
    );
    let answers: Vec<&str> = stdout.split(&format!("\"{END_OF_STEP}\"\n")).collect();
    assert_eq!(
        answers.len(),
        steps.len() + 1,
        "one answer per step, then nothing:\n{stdout}"
    );
    assert_eq!(answers[steps.len()], "", "nothing after the last step");
    let mut out = String::new();
    for (step, answer) in steps.iter().zip(&answers) {
        if let [heading] = step[..]
            && heading.starts_with('#')
        {
            let _ = writeln!(out, "\n{heading}");
            continue;
        }
        // In a block, every command but the last (EXEC, DISCARD) is
        // answered on one line: OK, QUEUED or an error.
        let lines: Vec<&str> = answer.split_inclusive('\n').collect();
        assert!(lines.len() >= step.len(), "{step:?} answered {answer:?}");
        let (each, last) = lines.split_at(step.len() - 1);
        for (command, line) in step.iter().zip(each) {
            let _ = write!(out, "> {command}\n{}", redact(command, line));
        }
        let command = step[step.len() - 1];
        let _ = write!(out, "> {command}\n{}", redact(command, &last.concat()));
    }
    out
}

/// Runs `script` with `python` (which has redis-py); it must succeed.
fn run_redis_py(python: &Path, script: &str) {
    let output = run(
        Command::new(python).args(["-c", script]),
        b"",
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "redis-py: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `redis-cli ARGS` (the command in its arguments, not on stdin).
fn cli_args(port: &str, args: &[&str]) -> String {
    let output = run(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", port])
            .args(args),
        b"",
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Sends `requests` in one write and returns everything the server
/// answered until it closed the connection.
fn raw_exchange(addr: SocketAddr, requests: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(requests).expect("write");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server closes the connection after QUIT");
    answer
}

/// `SET key value` for each pair, pipelined on one connection; every
/// answer must be `+OK`.
fn pipelined_sets(addr: SocketAddr, pairs: &[(String, String)]) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut requests = Vec::new();
    for (key, value) in pairs {
        requests.extend_from_slice(b"*3\r\n");
        for part in [&b"SET"[..], key.as_bytes(), value.as_bytes()] {
            requests.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            requests.extend_from_slice(part);
            requests.extend_from_slice(b"\r\n");
        }
    }
    stream.write_all(&requests).expect("write");
    let mut answers = vec![0u8; pairs.len() * b"+OK\r\n".len()];
    stream.read_exact(&mut answers).expect("the answers");
    assert!(
        answers.chunks(5).all(|answer| answer == b"+OK\r\n"),
        "{}",
        text(&answers)
    );
}

/// Every command of the RESP listener, through redis-cli, against a server
/// with its defaults but `async` durability (answers do not wait for an
/// fsync, so `TTL` right after `EXPIRE k 100` is 100 even on a slow disk).
const EVERY_COMMAND: &str = r#"
# connection
PING
PING "hello world"
ECHO "echo me"
ECHO ""
HELLO
HELLO 3
HELLO 2
HELLO 4
HELLO 3 SETNAME via-hello
CLIENT GETNAME
HELLO 2
CLIENT SETNAME tester
CLIENT GETNAME
CLIENT SETNAME "has space"
CLIENT ID
CLIENT SETINFO lib-name jubilant-test
CLIENT KILL
SELECT 0
SELECT 1
AUTH secret
# introspection
COMMAND COUNT
COMMAND DOCS GET
COMMAND INFO get mset
COMMAND NOSUCH
CONFIG GET appendonly
CONFIG GET databases
CONFIG SET save ""
INFO server
INFO connection
# SET and its options
GET missing
SET k v
GET k
SET k v2 NX
SET k v3 XX
GET k
SET nx:new v NX
SET xx:new v XX
GET xx:new
SET k v4 GET
SET nokey v GET
SET nx:new other NX GET
SET ex:k v EX 100
TTL ex:k
SET ex:k v5 KEEPTTL
TTL ex:k
GET ex:k
SET ex:k v6
TTL ex:k
SET px:k v PX 100000
TTL px:k
SET exat:k v EXAT 4102444800
PERSIST exat:k
SET pxat:k v PXAT 4102444800000
PERSIST pxat:k
SET k v EX 0
SET k v EX abc
SET k v NX XX
SET k v EX 10 PX 10
SET k
# the other string commands
SETNX snx 1
SETNX snx 2
GET snx
GETSET snx 3
GETSET gs:missing x
GETDEL snx
GETDEL snx
MSET a 1 b 2 c 3
MGET a b missing c a
MSET a 1 b
MSETNX a 9 d 4
MSETNX d 4 e 5
MGET d e
DEL a b nope a
UNLINK c d
UNLINK c d
EXISTS e e nope
APPEND ap Hello
APPEND ap " World"
GET ap
STRLEN ap
STRLEN missing
TYPE ap
TYPE missing
# counters
INCR counter
DECR counter
INCRBY counter 5
DECRBY counter 2
GET counter
TYPE counter
APPEND counter 0
GET counter
SET ten 10
INCR ten
GET ten
INCRBY ten -20
DECRBY ten 3
DECR ten
STRLEN ten
SET abc abc
INCR abc
DECR abc
INCRBY abc 1
DECRBY abc 1
INCRBY counter notanumber
INCRBY counter 007
SET big 9223372036854775807
INCR big
INCRBY big 1
SET small -9223372036854775808
DECR small
DECRBY small 1
DECRBY counter -9223372036854775808
GET big
# expiry
SET e1 v
TTL e1
PTTL e1
TTL missing
PTTL missing
EXPIRE e1 100
TTL e1
PEXPIRE e1 100000
TTL e1
EXPIREAT e1 4102444800
PERSIST e1
PEXPIREAT e1 4102444800000
PERSIST e1
PERSIST e1
TTL e1
EXPIRE missing 100
EXPIRE e1 100 XX
EXPIRE e1 100 NX
EXPIRE e1 200 NX
EXPIRE e1 50 GT
EXPIRE e1 150 GT
TTL e1
EXPIRE e1 10 LT
TTL e1
EXPIRE e1 100 BOGUS
EXPIRE e1 abc
INCR e1
TTL e1
EXPIRE e1 -1
EXISTS e1
GET e1
SET gone v
PEXPIRE gone 0
GET gone
# binary keys and values
SET "bin\x00\xff" "v\x00bin\r\n"
GET "bin\x00\xff"
STRLEN "bin\x00\xff"
EXISTS "bin\x00\xff"
KEYS "bin*"
KEYS "bin\x00*"
# the whole keyspace
KEYS *
KEYS "e*"
KEYS "?x:k"
KEYS "[ab]*"
KEYS "[^a-m]*"
KEYS "nomatch*"
DBSIZE
SCAN 0 MATCH "ex*" COUNT 1000
SCAN 0 COUNT 3
SCAN 1 COUNT 1000
SCAN 0 MATCH "*:*" COUNT 1000 TYPE string
SCAN 0 COUNT 1000 TYPE hash
SCAN 424242
SCAN abc
FLUSHDB
FLUSHALL
DBSIZE
# transactions
MULTI
SET m1 1
INCR m1
GET m1
PING
ECHO inside
EXEC
MULTI
SET m2 x
DISCARD
GET m2
EXEC
DISCARD
MULTI
SET m3 x
NOSUCHCOMMAND
EXEC
GET m3
MULTI
GET
EXEC
MULTI
KEYS *
EXEC
MULTI
MULTI
INCR ap
SET m4 ok
EXEC
GET m4
# WATCH: a change to a watched key, even from this connection, fails EXEC
WATCH w
SET w changed
MULTI
SET w fromtxn
EXEC
GET w
WATCH w
MULTI
SET w fromtxn
EXEC
GET w
WATCH w
UNWATCH
SET w again
MULTI
GET w
EXEC
WATCH w other
MULTI
WATCH w
SET w x
DISCARD
SET w y
MULTI
GET w
EXEC
WATCH never:written
MULTI
SET never:written now
EXEC
# durability classes (this server's default is async)
JUBILANT.DURABILITY
JUBILANT.DURABILITY sync
SET dur:sync v
JUBILANT.DURABILITY
JUBILANT.DURABILITY async
JUBILANT.DURABILITY default
JUBILANT.DURABILITY never
JUBILANT.DURABILITY sync async
# errors
NOSUCH a b
GET
GET a b
# RESP3
HELLO 3
GET k
GET missing
MGET k missing
SET k v GET
EXPIRE k 100
TTL k
SCAN 0 MATCH "m*" COUNT 1000
MULTI
GET k
EXEC
WATCH k
SET k changed
MULTI
GET k
EXEC
HELLO 2
GET missing
"#;

#[test]
fn redis_cli_runs_every_command() {
    if !have_redis_tool("redis-cli") {
        return;
    }
    let server = Server::start("[storage]\ndurability = \"async\"\n");
    let port = server.port();
    let mut out = transcript(&port, EVERY_COMMAND);

    out.push_str("\n# arguments mode (redis-cli -h 127.0.0.1 -p PORT ARGS...)\n");
    for args in [
        &["SET", "args:k", "hello world"][..],
        &["GET", "args:k"],
        &["--no-raw", "GET", "args:k"],
        &["--no-raw", "MGET", "args:k", "missing"],
        &["INCRBY", "args:n", "5"],
        &["--no-raw", "INCRBY", "args:n", "5"],
        &["--no-raw", "GET", "missing"],
        &["--no-raw", "NOSUCH"],
        &["QUIT"],
    ] {
        let _ = write!(
            out,
            "$ redis-cli {}\n{}",
            args.join(" "),
            cli_args(&port, args)
        );
    }

    // redis-cli fed on stdin ends its session at QUIT without sending it.
    out.push_str("\n# QUIT over a raw connection: answered, then the server closes it\n");
    let answer = raw_exchange(server.resp, b"PING\r\nQUIT\r\nPING\r\n");
    let _ = writeln!(
        out,
        "PING, QUIT, PING in one write -> {} then closed",
        answer.escape_ascii()
    );

    insta::assert_snapshot!(out);
}

#[test]
fn flushdb_when_enabled() {
    if !have_redis_tool("redis-cli") {
        return;
    }
    let server = Server::start("[resp]\nflush_enabled = true\n");
    // More keys than one step of FLUSHDB (and DBSIZE) takes.
    let pairs: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("key:{i:04}"), format!("value {i}")))
        .collect();
    pipelined_sets(server.resp, &pairs);
    let out = transcript(
        &server.port(),
        r#"
        SET "bin\x00\xff" x
        SET ttl:k v EX 1000
        DBSIZE
        FLUSHDB
        DBSIZE
        KEYS *
        SCAN 0
        GET key:0001
        GET "bin\x00\xff"
        MSET a 1 b 2
        DBSIZE
        FLUSHALL
        DBSIZE
        SET c 3
        FLUSHDB ASYNC
        FLUSHALL SYNC
        FLUSHDB NOW
        FLUSHDB SYNC ASYNC
        DBSIZE
        MULTI
        FLUSHDB
        EXEC
        "#,
    );
    insta::assert_snapshot!(out);
}

#[test]
fn redis_py_pipelines_transactions_and_scan() {
    let Some(python) = python() else {
        return;
    };
    let server = Server::start("");
    let script = workspace().join("server/tests/resp/redis_py_check.py");
    let began = Instant::now();
    let output = run(
        Command::new(&python)
            .arg(&script)
            .arg(server.port())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        b"",
        Duration::from_secs(600),
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{stdout}\n{stderr}",
        python.display(),
        script.display(),
        output.status
    );
    eprintln!("{stdout}(redis-py checks took {:?})", began.elapsed());
}

#[test]
fn redis_benchmark_runs_without_errors() {
    if !have_redis_tool("redis-benchmark") || !have_redis_tool("redis-cli") {
        return;
    }
    // Sync durability is checked elsewhere; here the point is the clients'
    // traffic, and async keeps the run to seconds on a debug build.
    let server = Server::start("[storage]\ndurability = \"async\"\n");
    let port = server.port();
    let requests = 20_000;
    let began = Instant::now();
    let output = run(
        Command::new("redis-benchmark").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "set,get,incr,mset",
            "-n",
            &requests.to_string(),
            "-q",
        ]),
        b"",
        Duration::from_secs(600),
    );
    let took = began.elapsed();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "redis-benchmark failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let all = format!("{stdout}{stderr}");
    assert!(
        !all.to_lowercase().contains("error"),
        "redis-benchmark reported an error:\n{all}"
    );
    // -q still draws its progress with carriage returns; the results are
    // the segments naming requests per second.
    let results: Vec<&str> = all
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| line.contains("requests per second"))
        .collect();
    for test in ["SET", "GET", "INCR", "MSET (10 keys)"] {
        let line = results
            .iter()
            .find(|line| line.starts_with(&format!("{test}: ")))
            .unwrap_or_else(|| panic!("no result for {test}:\n{all}"));
        let rps: f64 = line[test.len() + 2..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unreadable: {line}"));
        assert!(rps > 0.0, "{line}");
    }
    // Its 20,000 INCRs hit one key from 50 connections: none may be lost.
    assert_eq!(
        cli_args(&port, &["GET", "counter:__rand_int__"]),
        format!("{requests}\n")
    );
    assert_eq!(cli_args(&port, &["STRLEN", "key:__rand_int__"]), "3\n");
    eprintln!("{}\n(redis-benchmark took {took:?})", results.join("\n"));
}

/// A configuration with one user, `alice`, whose password is `secret`.
fn alice_config() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::from_b64("dGVzdHNhbHR0ZXN0c2FsdA").expect("salt");
    let hash = argon2::Argon2::default()
        .hash_password(b"secret", &salt)
        .expect("hash")
        .to_string();
    format!("[[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n")
}

#[test]
fn with_users_only_an_authenticated_client_is_served_on_either_listener() {
    let server = Server::start(&alice_config());
    if have_redis_tool("redis-cli") {
        let port = server.port();
        assert_eq!(cli_args(&port, &["PING"]), "PONG\n", "PING needs no user");
        assert_eq!(
            cli_args(&port, &["SET", "k", "v"]).trim_end(),
            "NOAUTH Authentication required."
        );
        let as_alice = |command: &[&str]| {
            let mut args = vec!["--user", "alice", "--pass", "secret", "--no-auth-warning"];
            args.extend_from_slice(command);
            cli_args(&port, &args)
        };
        assert_eq!(as_alice(&["SET", "k", "v"]), "OK\n");
        assert_eq!(as_alice(&["GET", "k"]), "v\n");
        let wrong = run(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port])
                .args([
                    "--user",
                    "alice",
                    "--pass",
                    "wrong",
                    "--no-auth-warning",
                    "GET",
                    "k",
                ]),
            b"",
            Duration::from_secs(60),
        );
        let said = format!("{}{}", text(&wrong.stdout), text(&wrong.stderr));
        assert!(said.contains("WRONGPASS"), "{said}");
        assert!(
            !said.contains("\nv\n"),
            "nothing served after a wrong password: {said}"
        );
        // Redis's AUTH with one argument names the user `default`.
        assert!(cli_args(&port, &["AUTH", "secret"]).starts_with("WRONGPASS"));
    }
    if let Some(python) = python() {
        let script = format!(
            "import redis\n\
             r = redis.Redis(port={port}, username='alice', password='secret')\n\
             assert r.set('py', 'x') and r.get('py') == b'x'\n\
             try:\n\
             \x20   redis.Redis(port={port}, username='alice', password='nope').get('py')\n\
             \x20   raise SystemExit('a wrong password was served')\n\
             except redis.exceptions.AuthenticationError:\n\
             \x20   pass\n\
             try:\n\
             \x20   redis.Redis(port={port}).get('py')\n\
             \x20   raise SystemExit('no password was served')\n\
             except redis.exceptions.AuthenticationError:\n\
             \x20   pass\n\
             r3 = redis.Redis(port={port}, username='alice', password='secret', protocol=3)\n\
             assert r3.get('py') == b'x'\n\
             print('redis-py: ok')\n",
            port = server.port()
        );
        run_redis_py(&python, &script);
    }
    // The native protocol: the Rust client, without and with credentials.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = server.native.to_string();
    runtime.block_on(async {
        use jubilant_client::{ClientError, ClientOptions, Credentials, ErrorCode};
        let env = jubilant_io_real::RealEnv::current();
        let open = jubilant_client::connect_with(&env, &target, ClientOptions::default())
            .await
            .expect("connect");
        open.ping().await.expect("PING needs no user");
        let refused = open.get("k").await;
        assert!(
            matches!(
                refused,
                Err(ClientError::Server {
                    code: ErrorCode::AuthRequired,
                    ..
                })
            ),
            "{refused:?}"
        );
        let wrong = ClientOptions {
            credentials: Some(Credentials {
                user: "alice".to_owned(),
                password: b"wrong".to_vec(),
            }),
            ..ClientOptions::default()
        };
        let refused = jubilant_client::connect_with(&env, &target, wrong).await;
        assert!(
            matches!(
                refused,
                Err(ClientError::Server {
                    code: ErrorCode::WrongPass,
                    ..
                })
            ),
            "{:?}",
            refused.err()
        );
        let right = ClientOptions {
            credentials: Some(Credentials {
                user: "alice".to_owned(),
                password: b"secret".to_vec(),
            }),
            ..ClientOptions::default()
        };
        let client = jubilant_client::connect_with(&env, &target, right)
            .await
            .expect("authenticated");
        let (value, _) = client.get("k").await.expect("get").expect("set over RESP");
        assert_eq!(
            value,
            jubilant_core::db::Value::Bytes(b"v".to_vec()),
            "as RESP stored it"
        );
        let info = client.info().await.expect("info");
        assert!(info.contains("# Auth\nusers:1\n"), "{info}");
        let failures: u64 = info
            .lines()
            .find_map(|line| line.strip_prefix("failures:"))
            .and_then(|n| n.parse().ok())
            .expect("failures");
        assert!(failures >= 2, "{info}");
    });
}

/// `[[users]]` entries, each `(name, password, acl)`.
fn users_config(users: &[(&str, &str, Option<&str>)]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::from_b64("dGVzdHNhbHR0ZXN0c2FsdA").expect("salt");
    let mut config = String::new();
    for (name, password, acl) in users {
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .expect("hash")
            .to_string();
        let _ = write!(
            config,
            "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\n"
        );
        if let Some(acl) = acl {
            let _ = writeln!(config, "acl = \"{acl}\"");
        }
    }
    config
}

/// `redis-cli` as `user` (its password is its name backwards).
fn cli_as(port: &str, user: &str, command: &[&str]) -> String {
    let password: String = user.chars().rev().collect();
    let mut args = vec!["--user", user, "--pass", &password, "--no-auth-warning"];
    args.extend_from_slice(command);
    cli_args(port, &args)
}

const ALICE_ACL: &str = "on ~app:* %R~pub:* +@all -@dangerous";

#[test]
fn acls_deny_forbidden_commands_and_keys_on_both_listeners_and_nothing_runs() {
    let audit_dir = tempfile::tempdir().expect("temporary directory");
    let audit = audit_dir.path().join("audit.log");
    let server = Server::start(&format!(
        "{}[audit]\nfile = \"{}\"\n",
        users_config(&[
            ("alice", "ecila", Some(ALICE_ACL)),
            ("admin", "nimda", None),
        ]),
        audit.display()
    ));
    let port = server.port();
    if have_redis_tool("redis-cli") {
        assert_eq!(cli_as(&port, "admin", &["SET", "pub:news", "hi"]), "OK\n");
        assert_eq!(cli_as(&port, "alice", &["SET", "app:1", "v"]), "OK\n");
        assert_eq!(cli_as(&port, "alice", &["GET", "pub:news"]), "hi\n");
        let no_key = "NOPERM No permissions to access a key";
        assert_eq!(
            cli_as(&port, "alice", &["SET", "pub:news", "x"]).trim_end(),
            no_key
        );
        assert_eq!(
            cli_as(&port, "alice", &["GET", "secret"]).trim_end(),
            no_key
        );
        // The forbidden key second: nothing of the command runs.
        let mset = ["MSET", "app:2", "a", "secret", "b"];
        assert_eq!(cli_as(&port, "alice", &mset).trim_end(), no_key);
        assert_eq!(
            cli_as(&port, "admin", &["EXISTS", "app:2", "secret"]),
            "0\n"
        );
        assert_eq!(
            cli_as(&port, "alice", &["FLUSHALL"]).trim_end(),
            "NOPERM User alice has no permissions to run the 'flushall' command"
        );
        assert_eq!(cli_as(&port, "alice", &["ACL", "WHOAMI"]), "alice\n");
        assert!(cli_as(&port, "alice", &["ACL", "LIST"]).starts_with("NOPERM"));
        assert_eq!(
            cli_as(&port, "admin", &["ACL", "LIST"]),
            format!("user admin on ~* +@all\nuser alice {ALICE_ACL}\n")
        );
        assert_eq!(cli_as(&port, "admin", &["ACL", "USERS"]), "admin\nalice\n");
        // SCAN and KEYS show a user only the keys it may read.
        assert_eq!(cli_as(&port, "admin", &["SET", "secret", "s"]), "OK\n");
        assert_eq!(
            cli_as(&port, "alice", &["SCAN", "0", "COUNT", "100"]),
            "0\napp:1\npub:news\n"
        );
        assert_eq!(
            cli_as(&port, "admin", &["KEYS", "*"]),
            "app:1\npub:news\nsecret\n"
        );
        // A block with a forbidden key is refused while queueing: EXEC
        // runs nothing.
        let block = run(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port])
                .args(["--user", "alice", "--pass", "ecila", "--no-auth-warning"]),
            b"MULTI\nSET app:3 x\nSET secret y\nEXEC\n",
            Duration::from_secs(60),
        );
        let said = text(&block.stdout);
        assert!(
            said.contains(no_key) && said.contains("EXECABORT"),
            "{said}"
        );
        assert_eq!(
            cli_as(&port, "admin", &["MGET", "app:3", "secret"]),
            "\ns\n"
        );
    }
    if let Some(python) = python() {
        let script = format!(
            "import redis\n\
             r = redis.Redis(port={port}, username='alice', password='ecila')\n\
             assert r.set('app:py', 'x')\n\
             try:\n\
             \x20   r.set('secret', 'x')\n\
             \x20   raise SystemExit('a forbidden key was written')\n\
             except redis.exceptions.NoPermissionError:\n\
             \x20   pass\n\
             print('redis-py: ok')\n"
        );
        run_redis_py(&python, &script);
    }
    // The native protocol: a typed PermissionDenied naming the op and key.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = server.native.to_string();
    runtime.block_on(async {
        use jubilant_client::{ClientError, ClientOptions, Credentials, ErrorCode};
        use jubilant_core::txn::{Mode, Txn};
        let env = jubilant_io_real::RealEnv::current();
        let as_user = |user: &str| ClientOptions {
            credentials: Some(Credentials {
                user: user.to_owned(),
                password: user.chars().rev().collect::<String>().into_bytes(),
            }),
            ..ClientOptions::default()
        };
        let alice = jubilant_client::connect_with(&env, &target, as_user("alice"))
            .await
            .expect("alice");
        let denied = |result: Result<(), ClientError>| match result {
            Err(ClientError::Server {
                code: ErrorCode::PermissionDenied,
                op,
                key,
                ..
            }) => (op, key),
            other => panic!("not denied: {other:?}"),
        };
        alice.set("app:native", 1i64).await.expect("an allowed key");
        let (op, key) = denied(alice.set("secret", 1i64).await.map(drop));
        assert_eq!((op, key), (Some(0), Some(b"secret".to_vec())));
        let mut txn = Txn::new();
        let allowed = txn.key("app:txn", Mode::RW);
        let forbidden = txn.key("secret", Mode::RW);
        txn.set(allowed, 1i64).set(forbidden, 2i64);
        let (op, key) = denied(alice.transaction(&txn).await.map(drop));
        assert_eq!((op, key), (Some(1), Some(b"secret".to_vec())));
        assert_eq!(
            alice.get("app:txn").await.expect("get"),
            None,
            "nothing ran"
        );
        let (op, key) = denied(alice.checkpoint().await.map(drop));
        assert_eq!((op, key), (None, None), "a command denied whole");
        let admin = jubilant_client::connect_with(&env, &target, as_user("admin"))
            .await
            .expect("admin");
        admin.checkpoint().await.expect("admin may checkpoint");
        // A scan shows alice only what she may read.
        let scan = jubilant_core::db::ScanRequest::new(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
        );
        let page = alice.scan_page(&scan).await.expect("scan");
        assert!(
            page.entries
                .iter()
                .all(|(key, _)| !key.starts_with(b"secret")),
            "{:?}",
            page.entries
        );
        assert!(!page.entries.is_empty());
        let info = admin.info().await.expect("info");
        let denials: u64 = info
            .lines()
            .find_map(|line| line.strip_prefix("denied_by_acl:"))
            .and_then(|n| n.parse().ok())
            .expect("denied_by_acl");
        assert!(denials >= 3, "{info}");
    });
    // The audit log: every authentication, denial and admin command.
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let has = |events: &[serde_json::Value], wanted: &[(&str, &str)]| {
        events
            .iter()
            .any(|event| wanted.iter().all(|(field, value)| event[*field] == *value))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut wanted: Vec<&[(&str, &str)]> = vec![
        &[
            ("event", "auth_ok"),
            ("user", "alice"),
            ("listener", "native"),
        ],
        &[
            ("event", "denied"),
            ("user", "alice"),
            ("command", "set"),
            ("key", "736563726574"),
        ],
        &[
            ("event", "denied"),
            ("user", "alice"),
            ("command", "checkpoint"),
        ],
        &[
            ("event", "admin"),
            ("user", "admin"),
            ("command", "checkpoint"),
            ("outcome", "ok"),
        ],
    ];
    if have_redis_tool("redis-cli") {
        wanted.push(&[
            ("event", "denied"),
            ("listener", "resp"),
            ("command", "flushall"),
        ]);
        wanted.push(&[
            ("event", "admin"),
            ("listener", "resp"),
            ("command", "acl|list"),
        ]);
    }
    loop {
        let events = events();
        if wanted.iter().all(|wanted| has(&events, wanted)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log lacks an event: {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one RESP command on `stream` and reads its one-line answer.
fn exchange_line(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(request.as_bytes()).expect("write");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("an answer");
        line.push(byte[0]);
    }
    text(&line).trim_end().to_owned()
}

#[test]
#[cfg(unix)]
fn sighup_reloads_users_and_the_next_command_obeys_them_on_the_same_connection() {
    let server = Server::start(&users_config(&[("alice", "ecila", Some("on ~* +@all"))]));
    let config_path = server._dir.path().join("jubilant.toml");
    let write_config = |users: &[(&str, &str, Option<&str>)]| {
        std::fs::write(&config_path, users_config(users)).expect("write the config");
    };
    let hangup = || {
        let pid = server.child.id().to_string();
        assert!(runs("kill", &["-HUP", &pid]), "kill -HUP {pid}");
    };
    let mut stream = TcpStream::connect(server.resp).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert_eq!(
        exchange_line(&mut stream, &["AUTH", "alice", "ecila"]),
        "+OK"
    );
    assert_eq!(exchange_line(&mut stream, &["SET", "k", "1"]), "+OK");
    // Until the reload lands, SET is allowed; after it, not.
    let until = |stream: &mut TcpStream, args: &[&str], answer: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = exchange_line(stream, args);
            if got.starts_with(answer) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{args:?} still answers {got:?}, not {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write_config(&[("alice", "ecila", Some("on ~* +@all -set"))]);
    hangup();
    until(
        &mut stream,
        &["SET", "k", "2"],
        "-NOPERM User alice has no permissions to run the 'set' command",
    );
    assert_eq!(
        exchange_line(&mut stream, &["GET", "k"]),
        "$1",
        "reads still allowed"
    );
    let mut rest = [0u8; 3];
    stream.read_exact(&mut rest).expect("the value");
    // A file that does not load changes nothing.
    std::fs::write(&config_path, "[[users]]\nname = \"alice\"\n").expect("write");
    hangup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(exchange_line(&mut stream, &["SET", "k", "3"]).starts_with("-NOPERM"));
    // A removed user's connection is unauthenticated from its next
    // command.
    write_config(&[("bob", "bob", None)]);
    hangup();
    // (A one-line answer until then: `exchange_line` reads one line.)
    until(&mut stream, &["EXISTS", "k"], "-NOAUTH");
    assert_eq!(exchange_line(&mut stream, &["AUTH", "bob", "bob"]), "+OK");
    assert_eq!(exchange_line(&mut stream, &["SET", "k", "4"]), "+OK");
}
