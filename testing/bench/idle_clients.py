"""Open N idle PostgreSQL client connections (startup + cleartext/md5/SCRAM auth
until ReadyForQuery; with --tls, over TLS as sslmode=require), write a ready file, and
hold them until killed."""
import argparse, asyncio, base64, hashlib, hmac, os, resource, ssl, struct, sys

def frame(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body

async def read_msg(r):
    head = await r.readexactly(5)
    return head[:1], await r.readexactly(struct.unpack("!I", head[1:])[0] - 4)

salted_cache = {}

def scram_final(password, state, server_first):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    if not attrs["r"].startswith(state["nonce"]):
        raise RuntimeError("SCRAM: server nonce does not extend ours")
    key = (attrs["s"], attrs["i"])
    if key not in salted_cache:
        salted_cache[key] = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted_cache[key], b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = "c=biws,r=" + attrs["r"]
    auth_msg = ",".join([state["first_bare"], server_first, without_proof]).encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

async def connect(a):
    r, w = await asyncio.open_connection(a.host, a.port)
    if a.tls:
        # SSLRequest; sslmode=require: encrypted, the certificate not checked.
        w.write(struct.pack("!II", 8, 80877103))
        await w.drain()
        if await r.readexactly(1) != b"S":
            raise RuntimeError("the server refused TLS")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        await w.start_tls(ctx)
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                      for k, v in (("user", a.user), ("database", a.db))) + b"\0"
    body = struct.pack("!I", 196608) + params
    w.write(struct.pack("!I", len(body) + 4) + body)
    state = {}
    while True:
        await w.drain()
        tag, body = await read_msg(r)
        if tag == b"E":
            fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
            raise RuntimeError(fields.get(b"M", b"?").decode())
        if tag == b"Z":
            return w
        if tag != b"R":
            continue
        code = struct.unpack("!I", body[:4])[0]
        if code == 3:
            w.write(frame(b"p", a.password.encode() + b"\0"))
        elif code == 5:
            inner = hashlib.md5((a.password + a.user).encode()).hexdigest()
            outer = "md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest()
            w.write(frame(b"p", outer.encode() + b"\0"))
        elif code == 10:
            state["nonce"] = base64.b64encode(os.urandom(18)).decode()
            state["first_bare"] = "n=,r=" + state["nonce"]
            first = ("n,," + state["first_bare"]).encode()
            w.write(frame(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        elif code == 11:
            w.write(frame(b"p", scram_final(a.password, state, body[4:].decode())))
        elif code not in (0, 12):
            raise RuntimeError(f"unsupported auth request {code}")

async def main():
    p = argparse.ArgumentParser()
    for name in ("host", "user", "password", "db", "ready"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--tls", action="store_true")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gate = asyncio.Semaphore(a.concurrency)

    async def one():
        async with gate:
            return await asyncio.wait_for(connect(a), 60)

    results = await asyncio.gather(*(one() for _ in range(a.count)), return_exceptions=True)
    errors = [e for e in results if isinstance(e, BaseException)]
    if errors:
        print(f"idle_clients: {len(errors)} of {a.count} connections failed; first: {errors[0]!r}",
              file=sys.stderr)
        sys.exit(1)
    with open(a.ready, "w") as f:
        f.write(str(a.count))
    await asyncio.Event().wait()

asyncio.run(main())
