"""The JWT gateway from Python (psycopg 3): the token is the password, TLS is
required, the startup user is the token's role. Run by testing/gateway-psycopg.sh
(from router/tests/gateway_keys.rs) with the GW_* variables it documents; also the
README's psycopg example.

    import psycopg
    with psycopg.connect(host=..., port=5433, dbname=..., user="app_user",
                         password=token, sslmode="require") as conn:
        conn.execute("SELECT count(*) FROM notes").fetchone()
"""

import json
import os
import sys

import psycopg
from psycopg import errors

env = os.environ
tenant = int(env["GW_TENANT"])

with psycopg.connect(host="127.0.0.1", port=int(env["GW_PORT"]), dbname=env["GW_DB"],
                     user=env["GW_ROLE"], password=env["GW_TOKEN"],
                     sslmode="verify-full", sslrootcert=env["GW_CA"],
                     connect_timeout=15) as conn:
    role = conn.execute("SELECT current_user").fetchone()[0]
    assert role == env["GW_ROLE"], role
    claims = json.loads(conn.execute(
        "SELECT current_setting('request.jwt.claims', true)").fetchone()[0])
    assert claims["tenant_id"] == tenant, claims
    # Parameters go through the extended protocol and are checked at Bind.
    n = conn.execute("SELECT count(*) FROM notes WHERE tenant_id = %s", (tenant,)).fetchone()[0]
    assert n == int(env["GW_ROWS"]), n
    tenants = conn.execute("SELECT DISTINCT tenant_id FROM notes").fetchall()
    assert tenants == [(tenant,)], tenants
    with conn.transaction():
        conn.execute("INSERT INTO notes VALUES (%s, 999, 'from psycopg')", (tenant,))
        assert conn.execute("SELECT current_user").fetchone()[0] == role
        raise psycopg.Rollback()
    for sql, params in [("SELECT * FROM notes WHERE tenant_id = %s", (int(env["GW_OTHER_TENANT"]),)),
                        ("SET ROLE app", None)]:
        try:
            conn.execute(sql, params)
        except errors.InsufficientPrivilege:
            pass
        else:
            sys.exit(f"not refused: {sql}")

try:
    psycopg.connect(host="127.0.0.1", port=int(env["GW_PORT"]), dbname=env["GW_DB"],
                    user=env["GW_ROLE"], password=env["GW_TOKEN"] + "x",
                    sslmode="require", connect_timeout=15)
    sys.exit("a tampered token logged in")
except psycopg.OperationalError as e:
    assert "password authentication failed" in str(e), e

print("psycopg example: ok")
