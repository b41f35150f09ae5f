package dbbench

// flaskApp is the seed's stack with the same two endpoints: Flask and
// psycopg2, one connection per gunicorn worker, opened on first use (after
// the fork), autocommit as the service's single statements are.
const flaskApp = `import os
import psycopg2
from flask import Flask, jsonify, request

app = Flask(__name__)
conn = None


def db():
    global conn
    if conn is None:
        conn = psycopg2.connect(os.environ["DATABASE_URL"])
        conn.autocommit = True
    return conn


def message(row):
    return {"id": row[0], "text": row[1], "created_at": row[2].isoformat(), "instance": row[3]}


@app.route("/")
def hello():
    return "Hello from Kubernetes"


@app.post("/api/messages")
def create():
    text = request.get_json()["text"]
    with db().cursor() as cur:
        cur.execute("` + insertSQL + `".replace("$1", "%s").replace("$2", "%s"), (text, "flask"))
        m = message(cur.fetchone())
    return jsonify(m), 201, {"Location": "/api/messages/%d" % m["id"]}


@app.get("/api/messages")
def list_messages():
    limit = int(request.args.get("limit", 20))
    with db().cursor() as cur:
        cur.execute("` + listSQL + `".replace("$1", "%s").replace("$2", "%s"), (2**63 - 1, limit + 1))
        rows = cur.fetchall()
    out = {"messages": [message(r) for r in rows[:limit]]}
    if len(rows) > limit:
        out["next"] = "/api/messages?limit=%d&before=%d" % (limit, rows[limit - 1][0])
    return jsonify(out)
`
