"""evr: the end-to-end test harness (Python standard library only).

The tests run against a real stack that tests/run starts (conf/everrunsctl
with a throw-away EVERRUNS_HOME). tests/run exports:

    EVR_BASE_URL   http://127.0.0.1:PORT (plain HTTP, nginx)
    EVR_HTTPS_URL  https://127.0.0.1:PORT (self-signed TLS, HTTP/2)
    EVR_ADMIN_KEY  the bootstrap admin's API key (default organization)
    EVR_HOME       the stack's EVERRUNS_HOME
    EVR_BUILDDIR, EVR_SRCDIR

Anything missing is read from $EVR_HOME/run/stack.env, which everrunsctl
writes on start, so a developer can point the tests at a `make start`
stack:  EVR_HOME=var python3 -m unittest tests/e2e/test_stack.py

API (other test files rely on exactly this):

    api(method, path, body=None, key=ADMIN_KEY, headers=None, raw=None,
        content_type=None, auth_scheme="Bearer") -> Resp
    psql(sql, *args) -> [tuple of str or None]   ($1, $2 ... are args)
    admin(*args) -> str                          (everruns-admin stdout)
    new_org(name) -> {"organization_id", "user_id", "api_key"}

and a few helpers: admin_run, ctl, stack_env, wait_until, HTTPS_BASE.
"""

import http.client
import json
import os
import re
import shlex
import ssl
import subprocess
import time
import urllib.parse

__all__ = [
    "BASE", "HTTPS_BASE", "ADMIN_KEY", "HOME", "Resp", "api", "psql",
    "admin", "admin_run", "new_org", "ctl", "stack_env", "wait_until",
    "AdminError", "start_runner", "stack_pid",
]


def _read_stack_env(home):
    """The KEY='value' lines of $home/run/stack.env as a dict ({} if none)."""
    env = {}
    if not home:
        return env
    try:
        with open(os.path.join(home, "run", "stack.env"),
                  encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                parts = shlex.split(v) if v else [""]
                env[k] = parts[0] if parts else ""
    except OSError:
        pass
    return env


HOME = os.environ.get("EVR_HOME") or os.environ.get("EVERRUNS_HOME") or ""
if HOME:
    HOME = os.path.abspath(HOME)
_STACK = _read_stack_env(HOME)


def stack_env(name, default=None):
    """A value from the environment, else from run/stack.env."""
    v = os.environ.get(name)
    if v:
        return v
    return _STACK.get(name, default)


def _admin_key_default():
    k = os.environ.get("EVR_ADMIN_KEY")
    if k:
        return k
    try:
        with open(os.path.join(HOME, "admin-api-key"), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


BASE = (stack_env("EVR_BASE_URL") or "http://127.0.0.1:8080").rstrip("/")
HTTPS_BASE = (stack_env("EVR_HTTPS_URL") or "https://127.0.0.1:8443").rstrip("/")
ADMIN_KEY = _admin_key_default()
SRCDIR = os.environ.get("EVR_SRCDIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("EVR_BUILDDIR") or SRCDIR
TIMEOUT = float(os.environ.get("EVR_HTTP_TIMEOUT", "60"))
# Bounds that tell "at once" from "after a poll, a lease or the end of a
# stream" are scaled by this: the sanitized pass runs every program of the
# stack several times slower (tests/run sets it there).
TIME_SCALE = float(os.environ.get("EVR_TIME_SCALE", "1"))


def at_once(seconds):
    """A bound for something that must happen at once, in this run's pace."""
    return seconds * TIME_SCALE

_DEFAULT = object()


class Resp:
    """An HTTP response: status, headers (lower-case names; repeated
    headers joined with ", "), body (bytes), text (str), json (parsed, or
    None when the body is not JSON)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", errors="replace")
        try:
            self.json = json.loads(self.text) if self.text.strip() else None
        except ValueError:
            self.json = None

    def __repr__(self):
        t = self.text if len(self.text) <= 500 else self.text[:500] + "..."
        return "<Resp %d %s>" % (self.status, t)


def _ssl_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _quote_path(path):
    # http.client refuses non-ASCII and control characters in the request
    # target; encode those, leave everything else (tests send malformed
    # paths on purpose) as it is.
    return "".join(c if 0x21 <= ord(c) < 0x7f else urllib.parse.quote(c, safe="")
                   for c in path)


def api(method, path, body=None, key=_DEFAULT, headers=None, raw=None,
        content_type=None, auth_scheme="Bearer", timeout=None):
    """Send one request and return a Resp; never raises on HTTP statuses.

    path: "/api/v1/..." relative to BASE, or a full http(s):// URL.
    body: a Python object sent as JSON (Content-Type application/json
    unless content_type says otherwise); raw: bytes (or str) sent as they
    are, with content_type if given. key: the API key (default ADMIN_KEY;
    None sends no Authorization); auth_scheme "Bearer", "ApiKey" or ""
    (the bare key). headers: extra headers; they replace ours whatever
    their case, and a value None removes one of ours.
    """
    if body is not None and raw is not None:
        raise ValueError("api(): give body or raw, not both")
    if key is _DEFAULT:
        key = ADMIN_KEY
    url = path if re.match(r"^https?://", path) else BASE + path
    u = urllib.parse.urlsplit(url)
    target = _quote_path(u.path or "/") + ("?" + _quote_path(u.query) if u.query else "")

    hdrs = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        hdrs["Content-Type"] = content_type or "application/json"
    elif raw is not None:
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        if content_type:
            hdrs["Content-Type"] = content_type
    elif content_type:
        hdrs["Content-Type"] = content_type
    if key is not None:
        hdrs["Authorization"] = (auth_scheme + " " + key) if auth_scheme else key
    for k, v in (headers or {}).items():
        # case-insensitive override; None removes a header
        for old in [h for h in hdrs if h.lower() == k.lower()]:
            del hdrs[old]
        if v is not None:
            hdrs[k] = v
    if (data is not None or method.upper() in ("POST", "PUT", "PATCH")) and \
            not any(h.lower() == "content-length" for h in hdrs):
        hdrs["Content-Length"] = str(len(data or b""))

    t = TIMEOUT if timeout is None else timeout
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                           timeout=t, context=_ssl_context())
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=t)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if data:
            try:
                conn.send(data)
            except (BrokenPipeError, ConnectionResetError):
                # the server answered early (413) and closed; read it
                pass
        r = conn.getresponse()
        out = {}
        for k, v in r.getheaders():
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return Resp(r.status, out, r.read())
    finally:
        conn.close()


def _run_user():
    """The stack's user when it differs from ours (tests run as root)."""
    u = stack_env("EVR_RUN_USER")
    if os.geteuid() == 0 and u and u != "root":
        return u
    return None


def _as_run_user(argv):
    u = _run_user()
    if not u:
        return argv
    return ["setpriv", "--reuid=" + u, "--regid=" + u, "--init-groups", "--"] + argv


def _stack_environ():
    env = dict(os.environ)
    if HOME:
        env["EVERRUNS_HOME"] = HOME
    if _run_user():
        env["HOME"] = HOME or "/"
    return env


_PSQL_NULL = "\x1a"


def _psql_bin():
    d = stack_env("EVR_PG_BINDIR")
    if d and os.path.exists(os.path.join(d, "psql")):
        return os.path.join(d, "psql")
    return "psql"


def psql(sql, *args):
    """Run SQL against the stack's database; rows as tuples of str (None
    for NULL). $1, $2, ... in the SQL are the args, quoted as literals by
    psql (None is NULL, True/False are true/false; cast as needed, e.g.
    $1::uuid). Give at most one statement that returns rows (others may
    precede it). Raises AssertionError with psql's message on error."""
    url = stack_env("EVR_DATABASE_URL")
    if not url:
        raise AssertionError("psql(): no database (EVR_DATABASE_URL / stack.env)")
    argv = [_psql_bin(), "-X", "-q", "-A", "-t", "-F", "\x1f", "-R", "\x1e",
            "-v", "ON_ERROR_STOP=1", "-P", "null=" + _PSQL_NULL,
            "-d", url, "-f", "-"]
    pending = []

    def subst(m):
        i = int(m.group(1))
        if i < 1 or i > len(args):
            raise ValueError("psql(): $%d but %d args" % (i, len(args)))
        a = args[i - 1]
        if a is None:
            return "NULL"
        if isinstance(a, bool):
            a = "true" if a else "false"
        pending.append(("evr_arg%d" % i, str(a)))
        return ":'evr_arg%d'" % i

    text = re.sub(r"\$(\d+)", subst, sql)
    for name, val in dict(pending).items():
        if "\0" in val:
            raise ValueError("psql(): NUL in an argument")
        argv[1:1] = ["-v", "%s=%s" % (name, val)]
    p = subprocess.run(_as_run_user(argv), input=text.encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=_stack_environ(), cwd="/", timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql failed (%d): %s" % (
            p.returncode, p.stderr.decode("utf-8", "replace").strip()))
    out = p.stdout.decode("utf-8")
    # unaligned, no headers: fields end at \x1f, rows at \x1e, and the
    # output of a statement with rows at a final newline
    if out.endswith("\n"):
        out = out[:-1]
    if not out:
        return []
    return [tuple(None if f == _PSQL_NULL else f for f in rec.split("\x1f"))
            for rec in out.split("\x1e")]


class AdminError(AssertionError):
    def __init__(self, argv, returncode, stdout, stderr):
        self.argv, self.returncode = argv, returncode
        self.stdout, self.stderr = stdout, stderr
        AssertionError.__init__(self, "everruns-admin %s: exit %d: %s" % (
            " ".join(argv), returncode, stderr.strip() or stdout.strip()))


def _admin_bin():
    b = stack_env("EVR_ADMIN_BIN")
    if b:
        return b
    return os.path.join(BUILDDIR, "fcgi", "admin", "everruns-admin")


def admin_run(*args, input=None):
    """everruns-admin ARGS with the stack's environment, as the stack's
    user; a CompletedProcess with str stdout/stderr (no check)."""
    argv = [_admin_bin()] + [str(a) for a in args]
    return subprocess.run(_as_run_user(argv), input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=_stack_environ(), cwd="/", timeout=120,
                          universal_newlines=True)


def admin(*args):
    """stdout of everruns-admin ARGS; raises AdminError on a non-zero exit."""
    p = admin_run(*args)
    if p.returncode != 0:
        raise AdminError([str(a) for a in args], p.returncode, p.stdout, p.stderr)
    return p.stdout


def tool_output(d):
    """What a tool answered: tool.completed's result is content parts
    (the upstream document's shape), one text part with the tool's JSON."""
    return json.loads(d["result"][0]["text"])


def new_org(name):
    """A new organization with a user and an API key (everruns-admin
    create-org): {"organization_id", "user_id", "api_key"}."""
    out = admin("create-org", name)
    try:
        return json.loads(out)
    except ValueError:
        for line in reversed(out.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError("create-org printed no JSON: %r" % out)


def ctl(*args, check=True):
    """conf/everrunsctl ARGS against the test stack (same environment as
    the start tests/run did); returns the CompletedProcess."""
    env = dict(os.environ)
    if HOME:
        env["EVERRUNS_HOME"] = HOME
    env.setdefault("EVR_SRCDIR", SRCDIR)
    env.setdefault("EVR_BUILDDIR", BUILDDIR)
    p = subprocess.run(["bash", os.path.join(SRCDIR, "conf", "everrunsctl")]
                       + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, stdin=subprocess.DEVNULL, timeout=180,
                       universal_newlines=True)
    if check and p.returncode != 0:
        raise AssertionError("everrunsctl %s: exit %d:\n%s" % (
            " ".join(args), p.returncode, p.stdout))
    return p


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned); AssertionError
    after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def stack_pid(name):
    """The pid of one of the stack's programs ("runner", "sse") from its
    pid file, or None."""
    try:
        with open(os.path.join(HOME, "run", name + ".pid")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_restart():
    """Restart the stack's private PostgreSQL cluster (fast shutdown: every
    connection is cut); returns when it accepts connections again."""
    pgdata = os.path.join(HOME, "pg")
    pg_ctl = os.path.join(stack_env("EVR_PG_BINDIR") or "", "pg_ctl")
    subprocess.run(_as_run_user([pg_ctl, "-D", pgdata, "-l", os.path.join(HOME, "log", "postgresql.log"), "-m", "fast", "-w", "-t", "60",
                                 "-s", "restart"]),
                   env=_stack_environ(), cwd="/", stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, check=True, timeout=90)


def start_runner(log_name="runner-extra", **env):
    """Another everruns-runner on the test stack's database (as the stack's
    user, with its configuration); EVERRUNS_* overrides as keyword
    arguments. Returns the Popen; the caller stops it."""
    binary = stack_env("EVR_RUNNER_BIN") or os.path.join(
        BUILDDIR, "fcgi", "runner", "everruns-runner")
    e = _stack_environ()
    e.update({k: str(v) for k, v in env.items()})
    log = open(os.path.join(HOME, "log", log_name + ".log"), "ab")
    try:
        return subprocess.Popen(_as_run_user([binary]), env=e, cwd="/",
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log)
    finally:
        log.close()
