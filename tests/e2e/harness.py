"""harness.py - end-to-end test harness for Tollgate (standard library only).

A Stack is one complete, private Tollgate installation on loopback:

    MariaDB (deploy/local-mariadb.sh, in a temp dir)  <- accountd --migrate
    fake-upstream (--api-key, --log)
    accountd, reportd, proxyd (one config.yaml)

Use it as a context manager:

    with Stack() as s:
        status, headers, body = s.http("POST", s.proxyd_port, "/v1/chat/completions",
                                       {"model": "llama3", "messages": [...]}, key=s.master_key)
        rows = s.sql("SELECT request_id, spend FROM spend_logs")

or, for unittest, subclass StackTestCase (one Stack per class; `stack_options`
are passed to Stack()).

Teardown (Stack.stop) always runs, also when start() fails half-way: every
daemon gets SIGTERM (reverse start order) and must exit 0 within 15 s (under
AddressSanitizer a leak makes the exit code non-zero, which fails the test and
prints the tail of that daemon's log); then MariaDB is stopped and a final
check verifies no process started from the temp dir survives. The temp dir is
removed only when everything passed; otherwise its path is printed.

Environment:
    TOLLGATE_BIN       directory holding proxyd, accountd, reportd, fake-upstream
                       (default <repo>/build/bin)
    TOLLGATE_KEEP_TMP  set to 1 to keep every temp dir (logs, config, database)

JSON answers are parsed with parse_float=decimal.Decimal, so money compares exactly.
"""

import atexit
import copy
import ctypes
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARIADB_SCRIPT = REPO / "deploy" / "local-mariadb.sh"

MASTER_KEY = "sk-1234"
UPSTREAM_KEY = "fake-upstream-key-0123456789"
DB_NAME, DB_USER, DB_PASSWORD = "tollgate", "tollgate", "secret"

# Price of groq/llama-3.1-8b-instant (libtollgate/data/prices.json).
INPUT_PRICE = Decimal("0.00000005")
OUTPUT_PRICE = Decimal("0.00000008")

DAEMON_START_TIMEOUT = float(os.environ.get("TOLLGATE_START_TIMEOUT", "30"))
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 60


def bin_dir():
    """The directory of the binaries under test (TOLLGATE_BIN)."""
    return Path(os.environ.get("TOLLGATE_BIN", str(REPO / "build" / "bin"))).resolve()


def is_asan():
    """Are the binaries under test built with AddressSanitizer (slower, more memory)?"""
    with open(bin_dir() / "proxyd", "rb") as f:
        return b"__asan_init" in f.read()


_CURVE = {}


def curve_keys():
    """The CURVE key pairs of this test process, made once by accountd
    --curve-keygen: accountd's (server) and proxyd's (client, which the test
    tools send-events and event-gen use too: curve_tools). Returns
    {"dir", "accountd", "proxyd"}: the key dir and the two public keys."""
    if not _CURVE:
        d = tempfile.mkdtemp(prefix="tollgate-curve-")
        atexit.register(shutil.rmtree, d, True)
        for name in ("accountd", "proxyd"):
            p = subprocess.run([str(bin_dir() / "accountd"), "--curve-keygen",
                                os.path.join(d, name)], capture_output=True, text=True, timeout=30)
            if p.returncode != 0 or len(p.stdout.strip()) != 40:
                raise HarnessError("accountd --curve-keygen failed: %s" % p.stderr)
            _CURVE[name] = p.stdout.strip()
        _CURVE["dir"] = d
    return _CURVE


def curve_tools(on):
    """Makes the test tools started from now on CURVE clients with proxyd's key
    (on), or plain (a stack with `curve: off`)."""
    if on:
        os.environ["TG_CURVE_SECRET_FILE"] = os.path.join(curve_keys()["dir"], "proxyd.key")
        os.environ["TG_CURVE_SERVER_KEY"] = curve_keys()["accountd"]
    else:
        os.environ.pop("TG_CURVE_SECRET_FILE", None)
        os.environ.pop("TG_CURVE_SERVER_KEY", None)


def curve_settings():
    """The tollgate: settings that make proxyd and accountd use curve_keys()."""
    k = curve_keys()
    return {
        "proxyd": {"curve_secret_key_file": os.path.join(k["dir"], "proxyd.key"),
                   "curve_server_public_keys": [k["accountd"]]},
        "accountd": {"curve_secret_key_file": os.path.join(k["dir"], "accountd.key"),
                     "curve_client_public_keys": [k["proxyd"]]},
    }


def expected_cost(prompt_tokens, completion_tokens):
    """Exact cost of a groq/llama-3.1-8b-instant call, as a Decimal."""
    return INPUT_PRICE * prompt_tokens + OUTPUT_PRICE * completion_tokens


def protocol_models(stack):
    """model_list entries of the other protocols, on the fake upstream: "claude"
    (anthropic/, Messages), "gpt" (openai/) and "gpt-azure" (azure/, Responses)."""
    host = stack.upstream_base[:-len("/v1")]
    return [
        {"model_name": "claude", "litellm_params": {
            "model": "anthropic/claude-sonnet-4-20250514", "api_base": host,
            "api_key": "os.environ/GROQ_API_KEY"}},
        {"model_name": "gpt", "litellm_params": {
            "model": "openai/gpt-4o", "api_base": stack.upstream_base,
            "api_key": "os.environ/GROQ_API_KEY"}},
        {"model_name": "gpt-azure", "litellm_params": {
            "model": "azure/gpt-4o", "api_base": host, "api_key": "os.environ/GROQ_API_KEY",
            "api_version": "2025-03-01-preview"}},
    ]


class HarnessError(AssertionError):
    """The stack could not start or did not stop cleanly."""


# --------------------------------------------------------------------- helpers

_ports_given = set()
_port_rng = random.Random()  # its own generator: a test's random.seed() does not steer ports


def _ephemeral_range():
    """The kernel's range for outgoing connections' source ports (Linux)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback TCP port nothing listens on now, never the same twice in this
    process. It is drawn below the kernel's ephemeral range, so no outgoing
    connection (of this test or any other process) can take it as its source
    port before the daemon binds it; a listener of another test run still can,
    which the Stack handles by starting that daemon again on new ports
    (_spawn_bound)."""
    lo, _ = _ephemeral_range()
    first = 10000 if lo > 12000 else 1024
    for _ in range(200):
        port = _port_rng.randrange(first, lo)
        if port not in _ports_given and _bindable(port):
            _ports_given.add(port)
            return port
    raise HarnessError("cannot find a free loopback port in %d-%d" % (first, lo - 1))


# What a daemon (or mariadbd) logs when its listen port was taken meanwhile.
_PORT_CLASH = re.compile(r"cannot (listen on|bind) .*|Address already in use|"
                         r"Bind on TCP/IP port|Do you already have another (mysqld|mariadbd)")
PORT_RETRIES = 3


def port_clash(text):
    """True when a daemon's or MariaDB's startup log says its port was taken."""
    return bool(_PORT_CLASH.search(text))


def log_tail(path, lines=LOG_TAIL_LINES):
    """The last lines of a log file, as one string (for error messages)."""
    try:
        with open(path, "r", errors="replace") as f:
            text = f.read().splitlines()
    except OSError as e:
        return "(no log %s: %s)" % (path, e)
    tail = text[-lines:]
    return "---- last %d lines of %s ----\n%s\n---- end ----" % (len(tail), path, "\n".join(tail))


def wait_for(predicate, timeout=5.0, interval=0.05, message=None):
    """Calls predicate() until it returns something truthy and returns that;
    raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1f s" % timeout)
        time.sleep(interval)


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def utc_month():
    """The first day of this UTC month."""
    return utc_today().replace(day=1)


def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, Decimal)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid double-quoted YAML scalar
    raise TypeError("cannot write %r as YAML" % (v,))


def _yaml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_.-]+", k) else json.dumps(k)


def _yaml_lines(obj, indent):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, _yaml_key(k)))
                out.extend(_yaml_lines(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, _yaml_key(k), "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, _yaml_key(k), _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = _yaml_lines(item, indent + 2)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(item) if not isinstance(item, (dict, list))
                                       else ("{}" if isinstance(item, dict) else "[]")))
    else:
        out.append(pad + _yaml_scalar(obj))
    return out


def dump_yaml(obj):
    """Block-style YAML for dicts, lists and scalars (strings double-quoted)."""
    return "\n".join(_yaml_lines(obj, 0)) + "\n"


def deep_merge(base, extra):
    """base updated recursively with extra (both dicts); returns base."""
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _pdeathsig():
    """preexec_fn: the child gets SIGTERM if the test process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def daemon_env(extra=None, unset=()):
    env = dict(os.environ)
    env["GROQ_API_KEY"] = UPSTREAM_KEY
    env.update(extra or {})
    for name in unset:
        env.pop(name, None)
    return env


def run_daemon_once(name, config_path, args=(), timeout=30.0, env=None):
    """Runs bin/NAME -c CONFIG ARGS... to completion (for bad-config and
    --migrate runs). Returns (exit code, stderr text). A run that does not end
    within timeout seconds is killed and fails with AssertionError."""
    cmd = [str(bin_dir() / name), "-c", str(config_path)] + list(args)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           env=env if env is not None else daemon_env(),
                           preexec_fn=_pdeathsig)
    except subprocess.TimeoutExpired as e:  # subprocess.run has killed it
        err = e.stderr.decode(errors="replace") if e.stderr else ""
        raise AssertionError("%s did not exit within %.0f s (killed); stderr:\n%s"
                             % (" ".join(cmd), timeout, err[-4000:]))
    return p.returncode, p.stderr.decode(errors="replace")


_BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}


def _unescape(cell):
    if cell == "NULL":
        return None
    return re.sub(r"\\[\\tn0]", lambda m: _BATCH_ESCAPES[m.group(0)], cell)


# ----------------------------------------------------------------------- stack

_live_stacks = []


@atexit.register
def _stop_leftover_stacks():
    for s in list(_live_stacks):
        try:
            s.stop()
        except Exception as e:  # report, keep going
            print("harness: at exit: %s" % e, file=sys.stderr)


def _install_sigterm_handler():
    """A SIGTERM to the test run (e.g. a CI timeout) unwinds it like sys.exit,
    so live stacks are still stopped (MariaDB is not our child: no PDEATHSIG)."""
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    except ValueError:  # not the main thread
        pass


class Daemon:
    def __init__(self, name, proc, log_path, port=None):
        self.name, self.proc, self.log_path, self.port = name, proc, log_path, port
        self.reported = False  # its early exit was already raised as a start failure

    def tail(self, lines=LOG_TAIL_LINES):
        return log_tail(self.log_path, lines)


class Stack:
    """A private Tollgate: MariaDB, fake-upstream, accountd, reportd, proxyd.

    extra_models  more model_list entries: a list of dicts, or a callable
                  taking the Stack (so entries can use stack.upstream_base)
    tollgate      dict merged into the config's `tollgate:` section
    extra_config  more config, merged into it, e.g. {"router_settings": {...}}
    fake_args     more fake-upstream arguments, e.g. ["--prompt-tokens", "7"]
    accountd_instances  how many accountd run (named accountd, accountd-2, ...;
                  each binds its own pair of endpoints, proxyd connects to all)
    """

    def __init__(self, extra_models=(), tollgate=None, master_key=MASTER_KEY,
                 upstream_key=UPSTREAM_KEY, fake_args=(), extra_config=None,
                 accountd_instances=1):
        self.extra_models = extra_models
        self.tollgate_overrides = tollgate or {}
        self.extra_config = extra_config or {}  # more top-level sections (router_settings, ...)
        self.master_key = master_key
        self.upstream_key = upstream_key
        self.fake_args = list(fake_args)
        self.accountd_instances = accountd_instances
        self.dir = None
        self.daemons = []           # in start order
        self.mariadb_started = False
        self.failures = []          # teardown problems
        self.keep = bool(os.environ.get("TOLLGATE_KEEP_TMP"))
        self.keep_reasons = []
        self.stopped = False
        self.config = None
        self.config_path = None

    # -- lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.keep_tmp("%s raised inside the stack" % exc_type.__name__)
        self.stop()
        return False

    def start(self):
        _install_sigterm_handler()
        _live_stacks.append(self)
        try:
            self._start()
        except BaseException as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.keep_tmp("start failed: " + first)
            try:
                self.stop()
            except AssertionError as stop_error:
                print("harness: teardown after a failed start also failed:\n%s" % stop_error,
                      file=sys.stderr)
            raise
        return self

    def _start(self):
        for name in ("proxyd", "accountd", "reportd", "fake-upstream"):
            if not os.access(bin_dir() / name, os.X_OK):
                raise HarnessError("%s not found or not executable in %s (set TOLLGATE_BIN)"
                                   % (name, bin_dir()))
        self.dir = Path(tempfile.mkdtemp(prefix="tg-", dir="/tmp"))
        self.log_dir = self.dir / "logs"
        self.log_dir.mkdir()
        self.db_dir = self.dir / "db"
        self.upstream_log_path = self.dir / "upstream.jsonl"
        self._start_mariadb(new_port=True)
        self._start_fake_upstream()
        # The daemons' ports are drawn now, just before they start (not before
        # MariaDB's slower start), and drawn again for a daemon whose port was
        # taken meanwhile (_start_bound).
        self.proxyd_port = free_port()
        self.reportd_port = free_port()
        for i in range(self.accountd_instances):
            self._renew_accountd_ports(i)
        self.config_path = self.dir / "config.yaml"
        self._write_stack_config()

        rc, err = self.run_daemon_once("accountd", args=["--migrate"], timeout=60)
        (self.log_dir / "migrate.log").write_text(err)
        if rc != 0:
            raise HarnessError("accountd --migrate exited %d:\n%s" % (rc, err[-4000:]))

        for i, name in enumerate(self.accountd_names()):
            self._start_bound(name, lambda: None, lambda i=i: self._renew_accountd_ports(i))
        self._start_bound("reportd", lambda: self.reportd_port,
                          lambda: setattr(self, "reportd_port", free_port()))
        self._start_bound("proxyd", lambda: self.proxyd_port,
                          lambda: setattr(self, "proxyd_port", free_port()))

    def _renew_accountd_ports(self, i):
        """New events/updates/metrics ports for accountd instance i (0-based)."""
        n = self.accountd_instances
        for attr in ("events_ports", "updates_ports", "metrics_ports"):
            if len(getattr(self, attr, ())) != n:
                setattr(self, attr, [None] * n)
            getattr(self, attr)[i] = free_port()
        self.events_port, self.updates_port = self.events_ports[0], self.updates_ports[0]

    def _write_stack_config(self):
        self.config = self.make_config()
        self.config_path.write_text(dump_yaml(self.config))
        curve_tools(self.config["tollgate"].get("curve") != "off")

    def _start_bound(self, name, port, renew, args=None):
        """Starts daemon NAME (its port: port(), None for accountd) and waits
        until it logs that it is ready (on that port: a connection alone could
        reach another process that holds it). When NAME died because a port of
        its was taken since free_port() drew it (by another test run's
        listener), renew() draws new ones, the config is written again and
        NAME starts again, up to PORT_RETRIES times."""
        for attempt in range(PORT_RETRIES):
            log_path = self.daemon_log(name)
            offset = log_path.stat().st_size if log_path.exists() else 0
            d = self._spawn(name, args or self.daemon_args(name), port=port())
            needle = ("ready on 127.0.0.1:%d" % d.port) if d.port else "accountd ready"
            try:
                self._wait_log(name, needle, offset)
                return d
            except HarnessError:
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    clash = port_clash(f.read().decode(errors="replace"))
                if attempt + 1 == PORT_RETRIES or d.proc.poll() is None or not clash:
                    raise
            print("harness: %s lost a port to another process; new ports" % name,
                  file=sys.stderr)
            self.daemons.remove(d)
            renew()
            if args is None:
                self._write_stack_config()

    def _start_mariadb(self, new_port=False):
        """Starts MariaDB on self.db_port; new_port: on a port drawn now, drawn
        again when another process took it before mariadbd bound it."""
        self.mariadb_started = True  # from here on, stop() must try to stop it
        for attempt in range(PORT_RETRIES if new_port else 1):
            if new_port:
                self.db_port = free_port()
            p, out = self._run_mariadb_start()
            if p.returncode == 0 and "mariadb ready" in out:
                return
            server_log = log_tail(self.db_dir / "mariadbd.log")
            if not (new_port and port_clash(server_log) and attempt + 1 < PORT_RETRIES):
                raise HarnessError("local-mariadb.sh start failed (exit %d):\n%s\n%s"
                                   % (p.returncode, out, server_log))
            print("harness: MariaDB lost its port to another process; a new port",
                  file=sys.stderr)

    def _run_mariadb_start(self):
        try:
            p = subprocess.run(["bash", str(MARIADB_SCRIPT), "start", str(self.db_dir),
                                str(self.db_port), DB_NAME, DB_USER, DB_PASSWORD],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=90)
        except subprocess.TimeoutExpired:
            raise HarnessError("local-mariadb.sh start did not finish within 90 s\n%s"
                               % log_tail(self.db_dir / "mariadbd.log"))
        out = p.stdout.decode(errors="replace")
        with open(self.log_dir / "mariadb-start.log", "a") as f:
            f.write(out)
        return p, out

    def _start_fake_upstream(self):
        args = ["--listen", "127.0.0.1:0", "--api-key", self.upstream_key,
                "--log", str(self.upstream_log_path)] + self.fake_args
        d = self._spawn("fake-upstream", args, stdout_name="fake-upstream.out")
        out_path = self.log_dir / "fake-upstream.out"

        def listening():
            if d.proc.poll() is not None:
                d.reported = True
                raise HarnessError("fake-upstream exited with %d during startup\n%s\n%s"
                                   % (d.proc.returncode, log_tail(out_path), d.tail()))
            m = re.search(r"fake-upstream listening on [^\s:]+:(\d+)", out_path.read_text())
            return int(m.group(1)) if m else None

        d.port = wait_for(listening, DAEMON_START_TIMEOUT,
                          message="fake-upstream did not print its port within %.0f s\n%s"
                          % (DAEMON_START_TIMEOUT, d.tail()))
        self.upstream_port = d.port
        self.upstream_base = "http://127.0.0.1:%d/v1" % d.port

    def make_config(self, database=None, new_ports=False):
        """The config as a dict. database: another database name; new_ports:
        fresh listen/endpoint ports (for a second daemon set)."""
        n = self.accountd_instances
        pp, rp = (free_port(), free_port()) if new_ports else (self.proxyd_port, self.reportd_port)
        eps = [free_port() for _ in range(n)] if new_ports else self.events_ports
        ups = [free_port() for _ in range(n)] if new_ports else self.updates_ports
        mps = [free_port() for _ in range(n)] if new_ports else self.metrics_ports
        ev = ["tcp://127.0.0.1:%d" % p for p in eps]
        up = ["tcp://127.0.0.1:%d" % p for p in ups]
        models = [{
            "model_name": "llama3",
            "litellm_params": {
                "model": "groq/llama-3.1-8b-instant",
                "api_base": self.upstream_base,
                "api_key": "os.environ/GROQ_API_KEY",
            },
        }]
        extra = self.extra_models(self) if callable(self.extra_models) else self.extra_models
        models.extend(copy.deepcopy(list(extra or [])))
        general = {"database_url": "mysql://%s:%s@127.0.0.1:%d/%s"
                   % (DB_USER, DB_PASSWORD, self.db_port, database or DB_NAME)}
        if self.master_key is not None:
            general = {"master_key": self.master_key, **general}
        spool = self.dir / ("spool" if not new_ports else "spool-%d" % pp)
        cfg = {
            "model_list": models,
            "general_settings": general,
            "tollgate": {
                "proxyd": {"listen": "127.0.0.1:%d" % pp, "spool_dir": str(spool)},
                "reportd": {"listen": "127.0.0.1:%d" % rp},
                "accountd": {"events": ev[0] if n == 1 else ev,
                             "updates": up[0] if n == 1 else up,
                             "metrics": ["127.0.0.1:%d" % p for p in mps]},
            },
        }
        deep_merge(cfg["tollgate"], curve_settings())  # ZeroMQ authenticated, as in production
        deep_merge(cfg["tollgate"], self.tollgate_overrides)
        deep_merge(cfg, self.extra_config)
        return cfg

    def write_config(self, name, config):
        """Writes a config dict as DIR/NAME; returns the path."""
        path = self.dir / name
        path.write_text(dump_yaml(config))
        return path

    def accountd_names(self):
        return ["accountd"] + ["accountd-%d" % i for i in range(2, self.accountd_instances + 1)]

    def daemon_args(self, name):
        """The arguments a daemon of this stack runs with (accountd-N: instance N)."""
        args = ["-c", str(self.config_path)]
        if name.startswith("accountd-"):
            args += ["--instance", name.split("-", 1)[1]]
        return args

    def _spawn(self, name, args, port=None, stdout_name=None):
        log_path = self.log_dir / (name + ".log")
        out_path = self.log_dir / stdout_name if stdout_name else log_path
        err_f = open(log_path, "ab")
        out_f = open(out_path, "ab") if stdout_name else err_f
        try:
            binary = name.split("-", 1)[0] if name.startswith(("accountd-", "proxyd-")) else name
            proc = subprocess.Popen([str(bin_dir() / binary)] + args, stdin=subprocess.DEVNULL,
                                    stdout=out_f, stderr=err_f, env=self.env(),
                                    cwd=str(self.dir), start_new_session=True,
                                    preexec_fn=_pdeathsig)
        finally:
            err_f.close()
            if out_f is not err_f:
                out_f.close()
        d = Daemon(name, proc, log_path, port)
        self.daemons.append(d)
        return d

    def add_proxyd(self, name="proxyd-2", port=None, tollgate=None, config=None):
        """Starts one more proxyd (NAME: proxyd-N) with this stack's config but
        its own port (a free one unless given) and spool dir, i.e. the same
        MariaDB, accountd and upstream; `tollgate` is merged into its config's
        tollgate: section, `config` into the whole (e.g. router_settings).
        Stopped with the stack. Returns its port."""
        cfg = copy.deepcopy(self.config)
        deep_merge(cfg["tollgate"], tollgate)
        deep_merge(cfg, config)
        cfg["tollgate"]["proxyd"]["spool_dir"] = str(self.dir / ("spool-" + name))
        path = self.dir / (name + ".yaml")
        chosen = [port or free_port()]

        def write():
            cfg["tollgate"]["proxyd"]["listen"] = "127.0.0.1:%d" % chosen[0]
            path.write_text(dump_yaml(cfg))

        def renew():
            if port:  # the caller's own port: nothing else to try
                raise HarnessError("%s: port %d is taken" % (name, port))
            chosen[0] = free_port()
            write()

        write()
        self._start_bound(name, lambda: chosen[0], renew, args=["-c", str(path)])
        return chosen[0]

    def daemon(self, name):
        for d in self.daemons:
            if d.name == name:
                return d
        raise KeyError(name)

    def _wait_port(self, name):
        d = self.daemon(name)

        def up():
            if d.proc.poll() is not None:
                d.reported = True
                raise HarnessError("%s exited with %d during startup\n%s"
                                   % (name, d.proc.returncode, d.tail()))
            try:
                socket.create_connection(("127.0.0.1", d.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(up, DAEMON_START_TIMEOUT,
                 message="%s did not accept connections on 127.0.0.1:%d within %.0f s\n%s"
                 % (name, d.port, DAEMON_START_TIMEOUT, d.tail()))

    def _wait_log(self, name, needle, offset=0):
        """Waits until NAME's log, from byte offset on, holds needle."""
        d = self.daemon(name)

        def ready():
            if d.proc.poll() is not None:
                d.reported = True
                raise HarnessError("%s exited with %d during startup\n%s"
                                   % (name, d.proc.returncode, d.tail()))
            with open(d.log_path, "rb") as f:
                f.seek(offset)
                return needle in f.read().decode(errors="replace")

        wait_for(ready, DAEMON_START_TIMEOUT,
                 message="%s did not log %r within %.0f s\n%s"
                 % (name, needle, DAEMON_START_TIMEOUT, d.tail()))

    def crash(self, name):
        """kill -9 a daemon (a crash); restart() brings it back."""
        d = self.daemon(name)
        d.proc.kill()
        d.proc.wait()
        self.daemons.remove(d)

    def restart(self, name):
        """Starts a daemon again (after crash() or a clean stop_one()) and waits
        until it is ready; its log file is appended to."""
        d0 = self.daemon_log(name)
        before = d0.read_text(errors="replace").count("ready") if d0.exists() else 0
        port = {"proxyd": self.proxyd_port, "reportd": self.reportd_port}.get(name)
        d = self._spawn(name, self.daemon_args(name), port=port)

        def ready():
            if d.proc.poll() is not None:
                d.reported = True
                raise HarnessError("%s exited with %d during restart\n%s"
                                   % (name, d.proc.returncode, d.tail()))
            return d.log_path.read_text(errors="replace").count("ready") > before

        wait_for(ready, DAEMON_START_TIMEOUT, message="%s did not restart\n%s" % (name, d.tail()))
        return d

    def stop_one(self, name):
        """SIGTERM one daemon and check it exits 0 (as at teardown)."""
        d = self.daemon(name)
        problems = self._stop_daemon(d)
        self.daemons.remove(d)
        if problems:
            raise HarnessError("\n".join(problems))

    def crash_mariadb(self):
        """kill -9 MariaDB (a crash); start_mariadb() brings it back, same data and port."""
        pid = int((self.db_dir / "mysqld.pid").read_text().strip())
        _kill(pid)
        wait_for(lambda: not _alive(pid), 10, message="mariadbd survived kill -9")

    def start_mariadb(self):
        self._start_mariadb()

    def daemon_log(self, name):
        return self.log_dir / (name + ".log")

    def keep_tmp(self, reason):
        """Keep the temp dir at stop() (a test failed, ...)."""
        self.keep = True
        self.keep_reasons.append(reason)

    def stop(self):
        """SIGTERM every daemon (reverse order), each must exit 0 within 15 s;
        stop MariaDB; check nothing is left; remove the temp dir if all passed.
        Raises AssertionError (with log tails) on any problem. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        problems = []
        for d in reversed(self.daemons):
            problems.extend(self._stop_daemon(d))
        if self.mariadb_started:
            problems.extend(self._stop_mariadb())
        problems.extend(self._stray_processes())
        if self in _live_stacks:
            _live_stacks.remove(self)
        self.failures.extend(problems)
        if problems:
            self.keep_tmp("teardown problems")
        if self.dir is not None:
            if self.keep:
                print("\nharness: keeping %s (%s)" % (self.dir, "; ".join(self.keep_reasons)
                                                      or "TOLLGATE_KEEP_TMP"), file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise HarnessError("stack teardown failed:\n" + "\n\n".join(problems))

    def _stop_daemon(self, d):
        p = d.proc
        if p.poll() is not None and d.reported:
            return []
        if p.poll() is not None:
            return ["%s (pid %d) had already exited with %s before teardown\n%s"
                    % (d.name, p.pid, p.returncode, d.tail())]
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return ["%s (pid %d) did not exit within %.0f s of SIGTERM; killed with SIGKILL\n%s"
                    % (d.name, p.pid, STOP_TIMEOUT, d.tail())]
        if rc != 0:
            return ["%s (pid %d) exited with %d after SIGTERM (expected 0)\n%s"
                    % (d.name, p.pid, rc, d.tail())]
        return []

    def _stop_mariadb(self):
        problems = []
        try:
            p = subprocess.run(["bash", str(MARIADB_SCRIPT), "stop", str(self.db_dir)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if p.returncode != 0:
                problems.append("local-mariadb.sh stop exited %d: %s"
                                % (p.returncode, p.stdout.decode(errors="replace")))
        except subprocess.TimeoutExpired:
            problems.append("local-mariadb.sh stop did not finish within 60 s")
        pid_file = self.db_dir / "mysqld.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _alive(pid):
            problems.append("mariadbd (pid %d) still running after stop; killing it" % pid)
            _kill(pid)
        return problems

    def _stray_processes(self):
        """Any process whose command line names our temp dir is ours and must be gone."""
        if self.dir is None:
            return []
        problems = []
        needle = str(self.dir).encode()
        for pid in _pids_with(needle):
            cmd = _cmdline(pid)
            problems.append("stray process %d still running: %s; killing it" % (pid, cmd))
            _kill(pid)
        return problems

    # -- helpers for tests

    def http(self, method, port, path, body=None, key=None, headers=None, timeout=30):
        """One HTTP request to 127.0.0.1:port. body: dict/list (sent as JSON),
        str/bytes (sent as is) or None. key: sent as 'Authorization: Bearer KEY'.
        Returns (status, {lower-case header: value}, parsed JSON or text)."""
        h = {"Connection": "close"}
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            else:
                data = body.encode() if isinstance(body, str) else body
                h["Content-Type"] = "application/json"
        if key is not None:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            out_headers = {}
            for k, v in resp.getheaders():
                k = k.lower()
                out_headers[k] = out_headers[k] + ", " + v if k in out_headers else v
            status = resp.status
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(text, parse_float=Decimal)
        except ValueError:
            parsed = text
        return status, out_headers, parsed

    def proxy(self, method, path, body=None, key=None, **kw):
        return self.http(method, self.proxyd_port, path, body, key, **kw)

    def report(self, method, path, body=None, key=None, **kw):
        return self.http(method, self.reportd_port, path, body, key, **kw)

    def chat(self, key, model="llama3", prompt_tokens=None, completion_tokens=None, **fields):
        """POST /v1/chat/completions with a minimal body (plus fields)."""
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        if prompt_tokens is not None or completion_tokens is not None:
            body["mock_usage"] = {"prompt_tokens": prompt_tokens or 0,
                                  "completion_tokens": completion_tokens or 0}
        body.update(fields)
        return self.proxy("POST", "/v1/chat/completions", body, key)

    def held_stream(self, key, body):
        """Starts a streamed chat and reads its first event: proxyd has admitted it and
        relays it, and the fake upstream then sends nothing more (mock_stall_after_chunks)
        until the client leaves. Returns the connection (close it to end the request) and
        the body's length in bytes."""
        data = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.proxyd_port, timeout=60)
        try:
            conn.request("POST", "/v1/chat/completions", data,
                         {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            resp = conn.getresponse()
            first = b""
            while b"\n\n" not in first:
                chunk = resp.read1(65536)
                if not chunk:
                    raise AssertionError("the stream ended before its first event: %r" % first)
                first += chunk
            if resp.status != 200 or not first.startswith(b"data: {"):
                raise AssertionError("not a stream: %d %r" % (resp.status, first))
        except BaseException:
            conn.close()
            raise
        return conn, len(data)

    def sql(self, query, db=DB_NAME, timeout=60):
        """Runs SQL as the MariaDB admin; returns the rows of the last result as
        lists of strings (None for NULL)."""
        args = ["bash", str(MARIADB_SCRIPT), "sql", str(self.db_dir)] + ([db] if db else [])
        p = subprocess.run(args, input=query.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("SQL failed (exit %d): %s\n%s" % (
                p.returncode, query, p.stderr.decode(errors="replace")))
        rows = []
        for line in p.stdout.decode().split("\n"):
            if line == "":
                continue
            rows.append([_unescape(c) for c in line.split("\t")])
        return rows

    def sql_value(self, query, db=DB_NAME):
        """The single value of a one-row, one-column query."""
        rows = self.sql(query, db)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError("expected one value from %r, got %r" % (query, rows))
        return rows[0][0]

    def upstream_requests(self):
        """Every POST the fake upstream received, as parsed JSON log lines."""
        try:
            text = self.upstream_log_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line]

    wait_for = staticmethod(wait_for)

    def env(self, extra=None, unset=()):
        """The daemons' environment (GROQ_API_KEY = the fake upstream's key)."""
        return daemon_env(dict({"GROQ_API_KEY": self.upstream_key}, **(extra or {})), unset)

    def run_daemon_once(self, name, config_path=None, args=(), timeout=30.0, env=None):
        """run_daemon_once with this stack's config and environment by default."""
        return run_daemon_once(name, config_path or self.config_path, args, timeout,
                               env if env is not None else self.env())

    def log_tail(self, name, lines=LOG_TAIL_LINES):
        return self.daemon(name).tail(lines)


# ------------------------------------------------------------ process checks

def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _pids_with(needle):
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle in cmd and _alive(int(entry)):
            found.append(int(entry))
    return found


# -------------------------------------------------------------------- unittest

class StackTestCase(unittest.TestCase):
    """One Stack per test class (started in setUpClass, always stopped by a
    class cleanup). A failing test keeps the temp dir for inspection."""

    stack_options = {}
    stack = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._start_class_stack()

    @classmethod
    def _start_class_stack(cls):
        cls.stack = Stack(**cls.stack_options)
        cls.addClassCleanup(cls.stack.stop)
        cls.stack.start()

    @classmethod
    def start_with_ledger(cls, write, period=utc_today, what="UTC day"):
        """For a setUpClass (in place of super().setUpClass()) whose ledger's dates
        count from period() (today, or this month with utc_month): starts the class's
        stack and calls write(). When period() changed while the ledger was written
        (its dates then shift under it), once more on a fresh stack. Returns period()
        as it was when the kept ledger was written."""
        for _ in range(2):
            super(StackTestCase, cls).setUpClass()
            cls._start_class_stack()
            before = period()
            write()
            if period() == before:
                return before
            print("\n%s: the %s changed while the ledger was written; once more on a"
                  " fresh stack" % (cls.__name__, what), file=sys.stderr)
            cls.stack.stop()
        raise AssertionError("the %s changed during both setups of %s" % (what, cls.__name__))

    def run(self, result=None):
        def bad(r):
            return len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", ()))
        before = bad(result) if result is not None else 0
        out = super().run(result)
        r = result if result is not None else out
        if r is not None and bad(r) > before and self.stack is not None:
            self.stack.keep_tmp("%s failed" % self.id())
        return out

    # shared assertions

    def assertReservation(self, held, small, reserved, step):
        """`held` (a streamed chat the fake upstream stalls) reserves exactly `reserved`
        while it runs: with a key of that max_budget, `small` sent meanwhile is refused
        (400 budget_exceeded); with `step` more, admitted. Once the held request ends (its
        client leaves), its reservation goes and `small` is admitted."""
        s = self.stack
        for budget, admitted in ((reserved, False), (reserved + step, True)):
            with self.subTest(budget=budget):
                st, _, k = s.report("POST", "/key/generate", {"max_budget": float(budget)},
                                    key=MASTER_KEY)
                self.assertEqual(st, 200, k)
                self.assertEqual(Decimal(s.sql_value(
                    "SELECT max_budget FROM api_keys WHERE token = '%s'" % k["token"])), budget)
                conn, n = s.held_stream(k["key"], held)
                try:
                    self.assertEqual(n, len(json.dumps(held).encode()))
                    st, _, out = s.proxy("POST", "/v1/chat/completions", small, key=k["key"])
                    self.assertEqual((st, None if st == 200 else out["error"]["type"]),
                                     (200, None) if admitted else (400, "budget_exceeded"), out)
                finally:
                    conn.close()
                wait_for(lambda: s.proxy("POST", "/v1/chat/completions", small,
                                         key=k["key"])[0] == 200, 20,
                         message="still refused after the held request ended")

    def assertErrorShape(self, body, status, param=..., type_=None, msg=None):
        """An OpenAI-shaped error: {"error": {"message","type","param","code"}};
        param is checked unless omitted (None means JSON null)."""
        self.assertIsInstance(body, dict, msg or body)
        self.assertEqual(set(body), {"error"}, msg or body)
        err = body["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"}, msg or body)
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"], msg or body)
        self.assertIsInstance(err["type"], str)
        self.assertEqual(err["code"], str(status), msg or body)
        if param is not ...:
            self.assertEqual(err["param"], param, msg or body)
        if type_ is not None:
            self.assertEqual(err["type"], type_, msg or body)
        return err
