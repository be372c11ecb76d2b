# Everyday redis-py calls, one result a line, for tests/resp_redis_py.rs,
# which runs this against resp_server and against redis-server and compares
# the two outputs line by line. Usage: redis_py_calls.py PORT PROTOCOL, where
# PROTOCOL is 2, 3 or "default" (what the installed redis-py picks: RESP3 in
# redis-py 8, RESP2 before).
#
# Results that legitimately differ between two servers (client ids, exact
# remaining milliseconds, key order) are printed in a form that does not.
import sys
import threading
import time

import redis

port = int(sys.argv[1])
protocol = None if sys.argv[2] == "default" else int(sys.argv[2])
kwargs = {} if protocol is None else {"protocol": protocol}
r = redis.Redis(host="127.0.0.1", port=port, **kwargs)


def rec(name, fn):
    try:
        value = fn()
    except Exception as e:  # the error's type and text are the result
        value = f"{type(e).__name__}: {e}"
    print(f"{name}: {value!r}", flush=True)


rec("flushdb", r.flushdb)
rec("ping", r.ping)
rec("echo", lambda: r.echo("hi there"))
rec("set", lambda: r.set("k", "v"))
rec("get", lambda: r.get("k"))
rec("get missing", lambda: r.get("nope"))
rec("set nx", lambda: r.set("k", "w", nx=True))
rec("set xx missing", lambda: r.set("other", "w", xx=True))
rec("set get", lambda: r.set("k", "w", get=True))
rec("set ex", lambda: r.set("t", "1", ex=100))
rec("ttl", lambda: r.ttl("t"))
rec("pttl in range", lambda: 99000 < r.pttl("t") <= 100000)
rec("set keepttl", lambda: r.set("t", "2", keepttl=True))
rec("ttl kept", lambda: r.ttl("t"))
rec("set exat", lambda: r.set("ea", "1", exat=int(time.time()) + 100))
rec("ttl exat", lambda: 98 <= r.ttl("ea") <= 100)
rec("set pxat past", lambda: r.set("gone", "1", pxat=1))
rec("get pxat past", lambda: r.get("gone"))
rec("set ex huge", lambda: r.set("k", "v", ex=9223372036854775807))
rec("set px huge", lambda: r.set("k", "v", px=9223372036854775807))
rec("set ex 0", lambda: r.execute_command("SET", "k", "v", "EX", "0"))
rec("set ex negative", lambda: r.execute_command("SET", "k", "v", "EX", "-1"))
rec("set ex word", lambda: r.execute_command("SET", "k", "v", "EX", "x"))
rec("set syntax", lambda: r.execute_command("SET", "k", "v", "NX", "XX"))
rec("incr", lambda: r.incr("n"))
rec("incrby", lambda: r.incrby("n", 41))
rec("decr", lambda: r.decr("n"))
rec("decrby", lambda: r.decrby("n", 2))
rec("incrby not integer", lambda: r.execute_command("INCRBY", "n", "1.5"))
rec("incr wrong value", lambda: r.incr("k"))
rec("set max", lambda: r.set("max", str(2**63 - 1)))
rec("incr overflow", lambda: r.incr("max"))
rec("decrby min", lambda: r.execute_command("DECRBY", "n", str(-(2**63))))
rec("append new", lambda: r.append("s", "abc"))
rec("append", lambda: r.append("s", "de"))
rec("strlen", lambda: r.strlen("s"))
rec("strlen missing", lambda: r.strlen("nope"))
rec("mset", lambda: r.mset({"a": "1", "b": "2", "c": "3"}))
rec("mget", lambda: r.mget("a", "nope", "c"))
rec("mset odd", lambda: r.execute_command("MSET", "a", "1", "b"))
rec("setnx existing", lambda: r.setnx("a", "x"))
rec("setnx new", lambda: r.setnx("d", "4"))
rec("getset", lambda: r.getset("a", "10"))
rec("getset missing", lambda: r.getset("e", "5"))
rec("getdel", lambda: r.getdel("e"))
rec("getdel again", lambda: r.getdel("e"))
rec("expire", lambda: r.expire("a", 100))
rec("ttl after expire", lambda: r.ttl("a"))
rec("expire nx", lambda: r.expire("a", 50, nx=True))
rec("expire xx", lambda: r.expire("a", 50, xx=True))
rec("expire gt", lambda: r.expire("a", 10, gt=True))
rec("expire lt", lambda: r.expire("a", 10, lt=True))
rec("ttl after lt", lambda: r.ttl("a"))
rec("expire missing", lambda: r.expire("nope", 10))
rec("expire overflow", lambda: r.expire("a", 9223372036854775807))
rec("pexpire overflow", lambda: r.pexpire("a", 9223372036854775807))
rec("expire bad option", lambda: r.execute_command("EXPIRE", "a", "10", "FOO"))
rec("persist", lambda: r.persist("a"))
rec("persist again", lambda: r.persist("a"))
rec("ttl none", lambda: r.ttl("a"))
rec("ttl missing", lambda: r.ttl("nope"))
rec("pttl missing", lambda: r.pttl("nope"))
rec("pexpire", lambda: r.pexpire("b", 100000))
rec("pexpire past deletes", lambda: r.pexpire("b", -5))
rec("exists b", lambda: r.exists("b"))
rec("type string", lambda: r.type("a"))
rec("type none", lambda: r.type("nope"))
rec("mset for keys", lambda: r.mset({"hello": 1, "hallo": 2, "hxllo": 3, "hllo": 4, "h*llo": 5}))
for pattern in ["*", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "h\\*llo", "nomatch*"]:
    rec(f"keys {pattern}", lambda: sorted(r.keys(pattern)))
rec("dbsize", r.dbsize)
rec("exists", lambda: r.exists("a", "b", "nope", "a"))
rec("delete", lambda: r.delete("a", "nope"))
rec("unknown command", lambda: r.execute_command("FOO", "a", "b"))
rec("wrong arity", lambda: r.execute_command("GET"))
rec("client setname", lambda: r.client_setname("tester"))
rec("client getname", r.client_getname)
rec("client id is int", lambda: isinstance(r.client_id(), int))

# A pipeline of 1000 commands (no MULTI), answered in order.
pipe = r.pipeline(transaction=False)
for i in range(250):
    pipe.set(f"p{i}", i)
    pipe.incr(f"p{i}")
    pipe.get(f"p{i}")
    pipe.expire(f"p{i}", 1000)
rec("pipeline of 1000", lambda: pipe.execute())

# The default pipeline is a transaction: MULTI, the commands, EXEC.
pipe = r.pipeline()
for i in range(250):
    pipe.set(f"t{i}", i)
    pipe.incrby(f"t{i}", 10)
    pipe.getset(f"t{i}", "x")
    pipe.strlen(f"t{i}")
rec("transaction of 1000", lambda: pipe.execute())
pipe = r.pipeline()
pipe.set("t0", "1")
pipe.execute_command("NOSUCHCOMMAND")
rec("transaction with an unknown command", lambda: pipe.execute())
rec("after the aborted transaction", lambda: r.get("t0"))


# WATCH: the transaction helper, and a conflicting write from another client.
def add_two(pipe):
    value = int(pipe.get("wt") or 0)
    pipe.multi()
    pipe.set("wt", value + 2)


rec("transaction with watch", lambda: r.transaction(add_two, "wt"))
rec("after the watched transaction", lambda: r.get("wt"))


def conflict():
    other = redis.Redis(host="127.0.0.1", port=port, **kwargs)
    with r.pipeline() as pipe:
        pipe.watch("wc")
        other.set("wc", "theirs")
        pipe.multi()
        pipe.set("wc", "ours")
        return pipe.execute()


rec("watch conflict", conflict)
rec("after the conflict", lambda: r.get("wc"))

# A 5 MB value round trip.
big = bytes((i * 7 + 3) % 251 for i in range(5 * 1024 * 1024))
rec("set big", lambda: r.set("big", big))
rec("get big equal", lambda: r.get("big") == big)
rec("strlen big", lambda: r.strlen("big"))
rec("append big", lambda: r.append("big", b"x"))

# Pub/sub: a subscriber thread collects messages a publisher sends.
p = r.pubsub()
p.subscribe("news")
p.psubscribe("n*", "x?")
confirmations = [p.get_message(timeout=5) for _ in range(3)]
rec("subscribe confirmations", lambda: confirmations)
got = []
done = threading.Event()


def listen():
    while len(got) < 6:
        message = p.get_message(timeout=5)
        if message is None:
            break
        got.append(message)
    done.set()


thread = threading.Thread(target=listen)
thread.start()
publisher = redis.Redis(host="127.0.0.1", port=port, **kwargs)
rec("publish news", lambda: publisher.publish("news", "one"))
rec("publish nope", lambda: publisher.publish("nope", "two"))
rec("publish xy", lambda: publisher.publish("xy", "three"))
rec("publish other", lambda: publisher.publish("other", "four"))
rec("publish news again", lambda: publisher.publish("news", "five"))
done.wait(10)
thread.join(10)
rec("messages", lambda: got)
p.unsubscribe("news")
p.punsubscribe()
rec("unsubscribe confirmations", lambda: [p.get_message(timeout=5) for _ in range(3)])
p.close()
rec("numsub after close", lambda: publisher.publish("news", "six"))
rec("flushdb", lambda: r.flushdb())
rec("dbsize after flush", r.dbsize)
