"""stacks: more hosts for the end-to-end tests of deployment and scale-out.

A test stack is one "host"; these helpers start others on the same
machine, each with its own state directory and loopback ports:

    ExtraStack(name, **env)   a complete app stack (nginx, everruns-api,
                              everruns-sse, everruns-runner) started by
                              conf/everrunsctl on the test stack's database
                              (EVERRUNS_DATABASE_URL) and server key, so it
                              is a second host of the same installation
    PgBouncer(port=None)      Debian's pgbouncer in transaction mode in
                              front of the test stack's PostgreSQL
    FrontNginx(upstream)      a second, buffering nginx in front of a stack,
                              as an enterprise reverse proxy would be

Each has start() and stop(); stop() is safe to call twice and after a
failed start, and removes everything the helper created. Use them as
context managers or register stop() with addCleanup/tearDownClass.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import evr


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def state_dir(name):
    """A fresh directory the stack's user can reach: under the test
    stack's $EVR_HOME/extra/, where tests/run stops whatever a test left
    running there (an aborted run) before it stops the test stack."""
    if evr.HOME and os.path.isdir(evr.HOME):
        parent = os.path.join(evr.HOME, "extra")
        os.makedirs(parent, mode=0o755, exist_ok=True)
        os.chmod(parent, 0o755)
    else:
        parent = "/var/tmp" if os.geteuid() == 0 else (os.environ.get("TMPDIR") or "/tmp")
    return tempfile.mkdtemp(prefix="%s." % name, dir=parent)


def _chown_to_run_user(path):
    u = evr.stack_env("EVR_RUN_USER")
    if os.geteuid() == 0 and u and u != "root":
        shutil.chown(path, u, u)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main_server_key():
    """The server key file of the test stack (hosts share it)."""
    conf = os.path.join(evr.HOME, "everruns.conf")
    path = os.path.join(evr.HOME, "server.key")
    try:
        with open(conf) as f:
            for line in f:
                k, sep, v = line.partition("=")
                if sep and k.strip() == "server_key_file" and v.strip():
                    path = v.strip()
    except OSError:
        pass
    return os.environ.get("EVERRUNS_SERVER_KEY_FILE") or path


class _Managed:
    """start() on entry (stop() if it fails), stop() on exit."""

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


class ExtraStack(_Managed):
    """Another host: conf/everrunsctl with its own EVERRUNS_HOME and ports
    on the test stack's database. Small by default (1 api process of 2
    threads, 1 nginx worker): the machine is shared."""

    def __init__(self, name, **env):
        self.name = name
        self.home = None
        self.http_port = self.https_port = None
        self.env = dict(os.environ)
        self.env.update({
            "EVERRUNS_DATABASE_URL": evr.stack_env("EVR_DATABASE_URL"),
            "EVERRUNS_SERVER_KEY_FILE": main_server_key(),
            "EVERRUNS_API_PROCS": "1",
            "EVERRUNS_API_THREADS": "2",
            "EVERRUNS_NGINX_WORKERS": "1",
            "EVR_SRCDIR": evr.SRCDIR,
            "EVR_BUILDDIR": evr.BUILDDIR,
        })
        self.env.pop("EVERRUNS_CONF", None)
        self.env.update({k: str(v) for k, v in env.items()})
        self.started = False

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.http_port

    def url(self, path):
        return self.base + path

    def api(self, method, path, *args, **kw):
        return evr.api(method, self.url(path), *args, **kw)

    def ctl(self, *args, check=True):
        p = subprocess.run(["bash", os.path.join(evr.SRCDIR, "conf", "everrunsctl")]
                           + list(args), env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError("everrunsctl %s (%s): exit %d:\n%s\n%s" % (
                " ".join(args), self.name, p.returncode, p.stdout, self.logs()))
        return p

    def start(self):
        if self.home is None:
            self.home = state_dir(self.name)
            self.http_port, self.https_port = free_ports(2)
            self.env.update({
                "EVERRUNS_HOME": self.home,
                "EVERRUNS_HTTP_PORT": str(self.http_port),
                "EVERRUNS_HTTPS_PORT": str(self.https_port),
            })
        self.started = True
        return self.ctl("start")

    def pids(self, name):
        """Live pids of one program of this stack (api, sse, runner, nginx)."""
        out = []
        try:
            with open(os.path.join(self.home, "run", name + ".pid")) as f:
                for tok in f.read().split():
                    if tok.isdigit() and _alive(int(tok)):
                        out.append(int(tok))
        except OSError:
            pass
        return out

    def pid(self, name):
        p = self.pids(name)
        return p[0] if p else None

    def kill_all(self, sig=signal.SIGKILL):
        """The whole host at once (nginx first, its workers with it). The
        nginx master goes before its workers: a master that outlives a
        killed worker by a moment starts a new one, which would keep the
        listening socket (seen on a loaded machine)."""
        victims = []
        for name in ("nginx", "api", "sse", "runner"):
            for pid in self.pids(name):
                children = [int(c) for c in _children(pid)] if name == "nginx" else []
                victims.append(pid)
                victims += children
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.05)
        return victims

    def logs(self, n=20):
        if not self.home:
            return ""
        out = []
        for f in ("api.log", "sse.log", "runner.log", "admin.log", "nginx-error.log"):
            p = os.path.join(self.home, "log", f)
            try:
                with open(p, errors="replace") as fh:
                    lines = fh.readlines()[-n:]
            except OSError:
                continue
            if lines:
                out.append("--- %s of %s:\n%s" % (f, self.name, "".join(lines)))
        return "\n".join(out)

    def stop(self):
        if not self.home:
            return
        if self.started:
            p = self.ctl("stop", check=False)
            if p.returncode != 0:
                self.kill_all()
            self.started = False
        env = {}
        try:
            env = evr._read_stack_env(self.home)
        except Exception:
            pass
        sock = env.get("EVR_SOCKDIR", "")
        if sock.startswith("/tmp/everruns-"):
            shutil.rmtree(sock, ignore_errors=True)
        if not os.environ.get("EVR_KEEP_HOME"):
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return f.read().split()
    except OSError:
        return []


def _run_as_stack_user(argv, **kw):
    return subprocess.Popen(evr._as_run_user(argv), cwd="/", **kw)


class _Daemon(_Managed):
    """A helper daemon in its own state directory, run as the stack's
    user in the foreground (we hold the Popen and stop it ourselves)."""

    name = "daemon"

    def __init__(self):
        self.dir = None
        self.proc = None
        self.port = None

    def _prepare(self):
        self.dir = state_dir(self.name)
        os.chmod(self.dir, 0o750)
        _chown_to_run_user(self.dir)
        self.port = free_ports(1)[0]

    def _write(self, fname, text):
        path = os.path.join(self.dir, fname)
        with open(path, "w") as f:
            f.write(text)
        _chown_to_run_user(path)
        return path

    def _spawn(self, argv):
        log = open(os.path.join(self.dir, self.name + ".out"), "ab")
        try:
            self.proc = _run_as_stack_user(argv, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log)
        finally:
            log.close()

    def _wait_port(self, timeout=15):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited (%s):\n%s" % (
                    self.name, self.proc.returncode, self.output()))
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        evr.wait_until(up, timeout=timeout, what="%s on port %d" % (self.name, self.port))

    def output(self):
        out = []
        for fn in sorted(os.listdir(self.dir or "/nonexistent") if self.dir else []):
            if fn.endswith((".out", ".log")):
                with open(os.path.join(self.dir, fn), errors="replace") as f:
                    out.append("--- %s:\n%s" % (fn, "".join(f.readlines()[-20:])))
        return "\n".join(out)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self.dir and not os.environ.get("EVR_KEEP_HOME"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _conninfo_fields(url):
    """key=value conninfo as a dict (the test stack's form)."""
    out = {}
    for part in url.split():
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


class PgBouncer(_Daemon):
    """pgbouncer (transaction pooling) on 127.0.0.1:port, in front of the
    test stack's PostgreSQL (its unix socket; peer authentication as the
    stack's user). Clients connect as `everruns` without a password
    (auth_type trust: loopback only, for tests)."""

    name = "pgbouncer"

    def __init__(self, max_client_conn=100, default_pool_size=10):
        _Daemon.__init__(self)
        self.max_client_conn = max_client_conn
        self.default_pool_size = default_pool_size

    def conninfo(self, dbname=None):
        db = dbname or self.dbname
        return "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, db, self.user)

    def start(self):
        self._prepare()
        f = _conninfo_fields(evr.stack_env("EVR_DATABASE_URL"))
        self.dbname = f.get("dbname", "everruns")
        self.user = f.get("user", "everruns")
        sockdir = f.get("host", "/var/run/postgresql")
        users = self._write("users.txt", '"%s" ""\n' % self.user)
        ini = self._write("pgbouncer.ini", """\
[databases]
%(db)s = host=%(sock)s dbname=%(db)s user=%(user)s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %(port)d
unix_socket_dir =
auth_type = trust
auth_file = %(users)s
pool_mode = transaction
max_client_conn = %(maxc)d
default_pool_size = %(pool)d
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = %(dir)s/pgbouncer.log
pidfile = %(dir)s/pgbouncer.pid
admin_users = %(user)s
""" % {"db": self.dbname, "sock": sockdir, "user": self.user, "port": self.port,
            "users": users, "maxc": self.max_client_conn, "pool": self.default_pool_size,
            "dir": self.dir})
        self._spawn(["pgbouncer", ini])
        self._wait_port()
        return self

    def show(self, what):
        """SHOW POOLS / STATS / ... on the admin console: a list of
        {column: str} rows."""
        p = subprocess.run(evr._as_run_user(
            [evr._psql_bin(), "-X", "-A", "-P", "footer=off", "-F", "|", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.user, "-d", "pgbouncer",
             "-c", "SHOW " + what]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
            universal_newlines=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("pgbouncer SHOW %s: %s" % (what, p.stderr))
        lines = [line.split("|") for line in p.stdout.splitlines() if line]
        return [dict(zip(lines[0], row)) for row in lines[1:]]


class FrontNginx(_Daemon):
    """A second nginx in front of a stack, proxying everything to it with
    nginx's default proxy buffering on, as an enterprise reverse proxy
    does. `server_extra` is added to its location (e.g. the settings
    README recommends for the stream routes); `prefix` is the path it
    forwards, unchanged (the stack's url_prefix)."""

    name = "front-nginx"

    def __init__(self, upstream_port, server_extra="", prefix="/",
                 forwarded_proto=None):
        _Daemon.__init__(self)
        self.upstream_port = upstream_port
        self.server_extra = server_extra
        self.prefix = prefix
        self.forwarded_proto = forwarded_proto

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def _location_settings(self):
        out = self.server_extra
        # nginx's defaults, spelled out, unless the test sets its own
        for d in ("proxy_buffering on;", "proxy_read_timeout 60s;"):
            if d.split()[0] not in out:
                out += "            %s\n" % d
        return out

    def start(self):
        self._prepare()
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        _chown_to_run_user(os.path.join(self.dir, "tmp"))
        proto = self.forwarded_proto or "$scheme"
        conf = self._write("nginx.conf", """\
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
daemon off;
events { worker_connections 256; }
http {
    access_log %(dir)s/access.log;
    client_body_temp_path %(dir)s/tmp/body;
    proxy_temp_path %(dir)s/tmp/proxy;
    fastcgi_temp_path %(dir)s/tmp/fastcgi;
    scgi_temp_path %(dir)s/tmp/scgi;
    uwsgi_temp_path %(dir)s/tmp/uwsgi;
    server {
        listen 127.0.0.1:%(port)d;
        location %(prefix)s {
            proxy_pass http://127.0.0.1:%(up)d;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto %(proto)s;
%(extra)s
        }
    }
}
""" % {"dir": self.dir, "port": self.port, "up": self.upstream_port,
            "prefix": self.prefix, "proto": proto,
            "extra": self._location_settings()})
        self._spawn([os.environ.get("EVERRUNS_NGINX", "/usr/sbin/nginx"),
                     "-p", self.dir + "/", "-c", conf, "-e", self.dir + "/error.log"])
        self._wait_port()
        return self
