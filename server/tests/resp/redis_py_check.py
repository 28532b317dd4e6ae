"""redis-py (5.2.1) against Jubilant DB's RESP listener.

Run by server/tests/resp_clients.rs with the port as the only argument:

    target/redis-venv/bin/python server/tests/resp/redis_py_check.py PORT

Checks, each against a live server:
- non-transactional pipelines: 1000 SETs, then 1000 GETs, every value;
- WATCH/MULTI/EXEC under contention: 8 threads x 200 increments of one
  counter, each WATCH -> GET -> MULTI -> SET -> EXEC, retried on WatchError;
  the counter must end at exactly 1600 (no lost update);
- transfers between two keys under WATCH, with a reader checking with MGET
  that the sum is always conserved;
- SCAN over 10,000 keys (scan_iter) while another thread writes and deletes
  other keys: each key returned exactly once, none missing;
- binary keys and values (bytes, NUL, 0xff, CR LF);
- RESP3 (protocol=3): HELLO, SET/GET, nil, a transaction.

Exits 0 when every check passes; otherwise prints what failed and exits 1.
"""

import random
import sys
import threading
import time
import traceback

import redis

PORT = int(sys.argv[1])
HOST = "127.0.0.1"


class CheckFailed(Exception):
    pass


def until_exec(pipe, keys, body):
    """WATCHes `keys`, runs `body(pipe)` (reads, then MULTI and the writes)
    and EXEC, again until EXEC runs; returns how many times it retried."""
    retries = 0
    while True:
        try:
            pipe.watch(*keys)
            body(pipe)
            pipe.execute()
            return retries
        except redis.WatchError:
            retries += 1


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def client(**kwargs):
    return redis.Redis(host=HOST, port=PORT, socket_timeout=60, **kwargs)


def basics():
    r = client()
    r.delete("basic:k", "basic:n")
    check(r.ping() is True, "PING")
    check(r.set("basic:k", "v") is True, "SET")
    check(r.get("basic:k") == b"v", "GET")
    check(r.exists("basic:k", "basic:missing") == 1, "EXISTS")
    check(r.expire("basic:k", 100) is True, "EXPIRE")
    ttl = r.ttl("basic:k")
    check(ttl in (99, 100), f"TTL right after EXPIRE 100 is {ttl}")
    check(r.incr("basic:n") == 1 and r.incrby("basic:n", 41) == 42, "INCR")
    check(r.client_setname("py") is True and r.client_getname() == "py", "CLIENT SETNAME")
    check(isinstance(r.client_id(), int), "CLIENT ID")
    check(r.dbsize() >= 2, "DBSIZE")
    info = r.info("server")
    check("uptime_ms" in info or "uptime_in_seconds" in info, f"INFO server: {info}")
    check(r.delete("basic:k", "basic:n", "basic:missing") == 2, "DEL")
    print("basics: ok")


def pipelines():
    r = client()
    try:
        # Answers without waiting for an fsync come back sooner, which tests
        # harder that a pipeline's commands take effect in order.
        r.execute_command("JUBILANT.DURABILITY", "async")
    except redis.ResponseError:
        pass  # not Jubilant DB (the script runs against Redis too)
    n = 1000
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"pipe:{i}", f"value-{i}")
    replies = pipe.execute()
    check(replies == [True] * n, f"pipelined SETs answered {set(map(repr, replies))}")
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.get(f"pipe:{i}")
    values = pipe.execute()
    for i, value in enumerate(values):
        check(value == f"value-{i}".encode(), f"pipe:{i} read back {value!r}")
    # One pipeline mixing commands on the same keys: each sees the one before.
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"pipe:n:{i}", "10").incr(f"pipe:n:{i}").get(f"pipe:n:{i}")
    replies = pipe.execute()
    for i in range(200):
        triple = replies[3 * i : 3 * i + 3]
        check(triple == [True, 11, b"11"], f"SET 10, INCR, GET on pipe:n:{i} answered {triple}")
    print(f"pipelines: {n} SETs, {n} GETs and 200 SET/INCR/GET triples: ok")


def contended_counter():
    key = "watch:counter"
    threads_n, each = 8, 200
    client().delete(key)
    retries = [0] * threads_n
    errors = []

    def worker(t):
        try:
            r = client()
            with r.pipeline() as pipe:
                for _ in range(each):

                    def increment(pipe):
                        current = int(pipe.get(key) or 0)
                        pipe.multi()
                        pipe.set(key, current + 1)

                    retries[t] += until_exec(pipe, [key], increment)
        except Exception:
            errors.append(traceback.format_exc())

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check(not errors, "a worker failed:\n" + "\n".join(errors))
    final = int(client().get(key))
    check(
        final == threads_n * each,
        f"the counter is {final}, not {threads_n * each}: an update was lost or doubled",
    )
    print(
        f"WATCH counter: {threads_n} threads x {each} increments = {final}, "
        f"{sum(retries)} retries on WatchError (per thread {retries}), "
        f"{time.monotonic() - began:.1f} s"
    )


def transfers():
    a, b = "bank:a", "bank:b"
    total = 2000
    client().mset({a: 1000, b: 1000})
    threads_n, each = 4, 100
    retries = [0] * threads_n
    errors = []
    stop = threading.Event()
    sums_seen = []

    def worker(t):
        try:
            r = client()
            rng = random.Random(t)
            with r.pipeline() as pipe:
                for _ in range(each):
                    src, dst = (a, b) if rng.random() < 0.5 else (b, a)
                    amount = rng.randint(1, 50)

                    def move(pipe, src=src, dst=dst, amount=amount):
                        have = int(pipe.get(src))
                        got = int(pipe.get(dst))
                        pipe.multi()
                        pipe.set(src, have - amount)
                        pipe.set(dst, got + amount)

                    retries[t] += until_exec(pipe, [src, dst], move)
        except Exception:
            errors.append(traceback.format_exc())

    def auditor():
        try:
            r = client()
            while not stop.is_set():
                x, y = r.mget(a, b)
                sums_seen.append(int(x) + int(y))
        except Exception:
            errors.append(traceback.format_exc())

    watcher = threading.Thread(target=auditor)
    watcher.start()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    check(not errors, "a transfer thread failed:\n" + "\n".join(errors))
    bad = [s for s in sums_seen if s != total]
    check(not bad, f"MGET saw sums other than {total}: {bad[:10]}")
    x, y = client().mget(a, b)
    check(int(x) + int(y) == total, f"after the transfers a + b = {int(x) + int(y)}, not {total}")
    print(
        f"WATCH transfers: {threads_n} threads x {each}, sum conserved ({x.decode()} + {y.decode()}), "
        f"{len(sums_seen)} MGET audits, {sum(retries)} retries"
    )


def scan_under_writes():
    r = client()
    n = 10_000
    expected = {f"scan:{i:05d}".encode() for i in range(n)}
    pipe = r.pipeline(transaction=False)
    for i, key in enumerate(sorted(expected)):
        pipe.set(key, i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()

    stop = threading.Event()
    errors = []
    written = [0]

    def writer():
        # Keys that sort among the scanned ones (scan:00042-w...), and keys
        # elsewhere; some deleted again.
        try:
            w = client()
            i = 0
            while not stop.is_set():
                among = f"scan:{(i * 7919) % n:05d}-w{i}"
                w.set(among, i)
                w.set(f"zz:other:{i}", i)
                if i % 3 == 0:
                    w.delete(among)
                i += 1
            written[0] = i
        except Exception:
            errors.append(traceback.format_exc())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        matched = list(r.scan_iter(match="scan:?????", count=100))
        everything = list(r.scan_iter(count=1000))
    finally:
        stop.set()
        thread.join()
    check(not errors, "the writer failed:\n" + "\n".join(errors))
    check(
        len(matched) == len(set(matched)),
        f"SCAN MATCH returned {len(matched) - len(set(matched))} keys more than once",
    )
    check(
        set(matched) == expected,
        f"SCAN MATCH missed {len(expected - set(matched))} keys and returned "
        f"{len(set(matched) - expected)} unexpected ones",
    )
    check(
        len(everything) == len(set(everything)),
        f"SCAN returned {len(everything) - len(set(everything))} keys more than once",
    )
    missing = expected - set(everything)
    check(not missing, f"SCAN without MATCH missed {len(missing)} keys, e.g. {sorted(missing)[:5]}")
    print(
        f"SCAN: {n} keys each exactly once (MATCH, COUNT 100), and {len(everything)} keys "
        f"without MATCH, no repeats, while a writer made {written[0]} rounds of changes"
    )


def binary():
    r = client()
    key, value = b"\x00\xff", b"\x00\xff\r\nend"
    check(r.set(key, value) is True, "SET binary")
    check(r.get(key) == value, f"GET binary: {r.get(key)!r}")
    check(r.strlen(key) == len(value), "STRLEN binary")
    check(r.append(key, b"\x80") == len(value) + 1, "APPEND binary")
    check(r.get(key) == value + b"\x80", "GET after APPEND")
    pairs = {b"bin:\x00": b"\x01", b"bin:\xff\xfe": b"\r\n", b"bin:\x7f": b""}
    check(r.mset(pairs) is True, "MSET binary")
    check(r.mget(list(pairs)) == list(pairs.values()), f"MGET binary: {r.mget(list(pairs))}")
    check(sorted(r.keys(b"bin:*")) == sorted(pairs), f"KEYS binary: {r.keys(b'bin:*')}")
    check(set(r.scan_iter(match=b"bin:*")) == set(pairs), "SCAN binary")
    check(r.exists(key, *pairs) == 4, "EXISTS binary")
    check(r.delete(key, *pairs) == 4, "DEL binary")
    check(r.get(key) is None, "deleted")
    print("binary keys and values: ok")


def resp3():
    r = client(protocol=3)
    hello = r.execute_command("HELLO", 3)
    proto = hello.get(b"proto", hello.get("proto"))
    check(proto == 3, f"HELLO 3 answered {hello}")
    check(r.set("r3:k", "v") is True, "RESP3 SET")
    check(r.get("r3:k") == b"v", "RESP3 GET")
    check(r.get("r3:missing") is None, "RESP3 nil")
    check(r.mget("r3:k", "r3:missing") == [b"v", None], "RESP3 MGET")
    check(r.incr("r3:n") == 1, "RESP3 INCR")
    check(r.ttl("r3:k") == -1, "RESP3 TTL")
    with r.pipeline() as pipe:
        pipe.watch("r3:n")
        pipe.multi()
        pipe.incr("r3:n").get("r3:n")
        check(pipe.execute() == [2, b"2"], "RESP3 MULTI/EXEC")
    check(r.delete("r3:k", "r3:n") == 2, "RESP3 DEL")
    print(f"RESP3: ok (HELLO: server={hello.get(b'server', hello.get('server'))!r})")


def main():
    print(f"redis-py {redis.__version__} against 127.0.0.1:{PORT}")
    began = time.monotonic()
    for step in (basics, pipelines, contended_counter, transfers, scan_under_writes, binary, resp3):
        try:
            step()
        except CheckFailed as failure:
            print(f"FAILED in {step.__name__}: {failure}")
            sys.exit(1)
        except Exception:
            print(f"FAILED in {step.__name__} with an exception:\n{traceback.format_exc()}")
            sys.exit(1)
    print(f"all redis-py checks passed in {time.monotonic() - began:.1f} s")


if __name__ == "__main__":
    main()
