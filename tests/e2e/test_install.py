"""test_install.py - `cmake --install` of the build under test (the directory above
TOLLGATE_BIN) into a temp prefix: every file in its FHS place, the systemd units rendered
for the installed paths and passing `systemd-analyze verify`, the price file and the schema
equal to the shipped ones, the pkg-config file usable, and an operator's config.yaml never
written by an install. With prefix /usr (staged by DESTDIR) the units read /etc/tollgate.

On a stack: the database grants deploy/README.md documents are enough for the daemons, and
the installed apply-schema.sh builds the same schema as `accountd --migrate`.

Run from the repo root:  python3 -m unittest -v tests/e2e/test_install.py
"""

import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

DAEMONS = ("proxyd", "accountd", "reportd")
UNITS = {"tollgate-proxyd.service": "proxyd", "tollgate-reportd.service": "reportd",
         "tollgate-accountd@.service": "accountd"}
TOKENIZERS = ("o200k_base.tiktoken.gz", "cl100k_base.tiktoken.gz")


def build_dir():
    return harness.bin_dir().parent


def cmake_install(prefix, env=None):
    """cmake --install of the build under test; returns its output."""
    p = subprocess.run(["cmake", "--install", str(build_dir()), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    if p.returncode != 0:
        raise AssertionError("cmake --install exited %d:\n%s%s"
                             % (p.returncode, p.stdout, p.stderr))
    return p.stdout


def find_one(root, pattern):
    found = sorted(Path(root).rglob(pattern))
    if len(found) != 1:
        raise AssertionError("expected one %s under %s, found %s" % (pattern, root, found))
    return found[0]


@unittest.skipUnless((build_dir() / "cmake_install.cmake").exists(),
                     "TOLLGATE_BIN is not the bin/ of a CMake build directory")
class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="tg-install-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.prefix = cls.tmp / "prefix"
        cls.output = cmake_install(cls.prefix)
        cls.confdir = cls.prefix / "etc" / "tollgate"

    def test_files_in_their_places(self):
        p = self.prefix
        for name in DAEMONS:
            self.assertTrue(os.access(p / "bin" / name, os.X_OK), name)
        for unit in UNITS:
            self.assertTrue((p / "lib/systemd/system" / unit).is_file(), unit)
        self.assertIn("u tollgate ", (p / "lib/sysusers.d/tollgate.conf").read_text())
        self.assertTrue((self.confdir / "config.example.yaml").is_file())
        self.assertFalse((self.confdir / "config.yaml").exists(),
                         "an install must never create the live config")
        share = p / "share" / "tollgate"
        for name in TOKENIZERS:
            self.assertEqual((share / "tokenizers" / name).read_bytes(),
                             (harness.REPO / "libtollgate/data/tokenizers" / name).read_bytes())
        shipped = sorted(f.name for f in (harness.REPO / "schema").glob("[0-9][0-9][0-9]_*.sql"))
        self.assertGreaterEqual(len(shipped), 9)
        self.assertEqual(sorted(f.name for f in (share / "schema").iterdir()), shipped)
        for name in shipped:
            self.assertEqual((share / "schema" / name).read_bytes(),
                             (harness.REPO / "schema" / name).read_bytes(), name)
        self.assertTrue(os.access(share / "apply-schema.sh", os.X_OK))
        doc = p / "share" / "doc" / "tollgate"
        for rel, src in (("README.md", "deploy/README.md"),
                         ("config.example.yaml", "deploy/config.example.yaml"),
                         ("examples/nginx/tollgate.conf", "deploy/nginx/tollgate.conf"),
                         ("examples/haproxy/haproxy.cfg", "deploy/haproxy/haproxy.cfg")):
            self.assertEqual((doc / rel).read_bytes(), (harness.REPO / src).read_bytes(), rel)
        self.assertEqual((self.confdir / "config.example.yaml").read_bytes(),
                         (harness.REPO / "deploy/config.example.yaml").read_bytes())
        find_one(p, "libtollgate-budget.so")
        self.assertTrue((p / "include/tollgate/budget_manager.h").is_file())
        self.assertIn(str(self.confdir / "config.yaml"), self.output)  # says where to copy it

    def test_price_file_is_the_shipped_one(self):
        installed = self.prefix / "share/tollgate/prices.json"
        shipped = harness.REPO / "libtollgate/data/prices.json"
        data = json.loads(installed.read_text())
        self.assertIsInstance(data, dict)
        self.assertTrue("groq/llama-3.1-8b-instant" in data.get("models", {}), list(data)[:5])
        self.assertTrue(data == json.loads(shipped.read_text()))
        self.assertEqual(installed.read_bytes(), shipped.read_bytes())

    def test_units_run_the_installed_daemons(self):
        unit_dir = self.prefix / "lib/systemd/system"
        for unit, daemon in UNITS.items():
            text = (unit_dir / unit).read_text()
            self.assertNotIn("@TG_", text, unit)
            execs = re.findall(r"^ExecStart=(.*)$", text, re.M)
            self.assertEqual(len(execs), 1, unit)
            argv = execs[0].split()
            self.assertEqual(argv[0], str(self.prefix / "bin" / daemon), unit)
            self.assertEqual(argv[1:3], ["-c", str(self.confdir / "config.yaml")], unit)
            self.assertTrue(os.access(argv[0], os.X_OK), argv[0])

    @unittest.skipIf(shutil.which("systemd-analyze") is None, "systemd-analyze not installed")
    def test_units_verify(self):
        # verify reads the units from their directory; the template through an instance
        work = self.tmp / "verify"
        work.mkdir(exist_ok=True)
        paths = []
        for unit in UNITS:
            src = self.prefix / "lib/systemd/system" / unit
            shutil.copy(src, work / unit)
            name = unit.replace("@.service", "@1.service")
            shutil.copy(src, work / name)
            paths.append(str(work / name))
        p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                           capture_output=True, text=True, cwd=str(work), timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stderr.strip(), "", p.stderr)

    def test_second_install_keeps_the_operators_config(self):
        prefix = self.tmp / "again"
        cmake_install(prefix)
        conf = prefix / "etc/tollgate"
        mine = "# edited by the operator\n" + (conf / "config.example.yaml").read_text()
        (conf / "config.yaml").write_text(mine)
        os.chmod(conf / "config.yaml", 0o640)
        before = os.stat(conf / "config.yaml")
        (conf / "config.example.yaml").write_text("stale example\n")
        cmake_install(prefix)
        after = os.stat(conf / "config.yaml")
        self.assertEqual((conf / "config.yaml").read_text(), mine)
        self.assertEqual((before.st_mtime_ns, before.st_ino, before.st_mode),
                         (after.st_mtime_ns, after.st_ino, after.st_mode))
        # the example is the package's own and is refreshed
        self.assertEqual((conf / "config.example.yaml").read_bytes(),
                         (harness.REPO / "deploy/config.example.yaml").read_bytes())

    def test_prefix_usr_reads_etc_tollgate(self):
        stage = self.tmp / "stage"
        cmake_install("/usr", env={"DESTDIR": str(stage)})
        self.assertTrue(os.access(stage / "usr/bin/proxyd", os.X_OK))
        self.assertTrue((stage / "etc/tollgate/config.example.yaml").is_file())
        self.assertFalse((stage / "usr/etc").exists())
        self.assertTrue((stage / "usr/share/tollgate/prices.json").is_file())
        text = (stage / "usr/lib/systemd/system/tollgate-accountd@.service").read_text()
        self.assertIn("\nExecStart=/usr/bin/accountd -c /etc/tollgate/config.yaml --instance %i\n",
                      text)
        self.assertNotIn(str(stage), text)

    @unittest.skipIf(shutil.which("pkg-config") is None or shutil.which("cc") is None,
                     "pkg-config or cc not installed")
    def test_pkg_config_builds_the_example(self):
        pc = find_one(self.prefix, "tollgate-budget.pc")
        env = dict(os.environ, PKG_CONFIG_PATH=str(pc.parent))
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tollgate-budget"],
                               capture_output=True, text=True, env=env, check=True).stdout.split()
        self.assertTrue(any(f.startswith("-L") and Path(f[2:]).resolve()
                            == find_one(self.prefix, "libtollgate-budget.so").parent.resolve()
                            for f in flags), flags)
        exe = self.tmp / "bm-example"
        lib = find_one(self.prefix, "libtollgate-budget.so")
        deps = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
        sanitize = ["-fsanitize=address,undefined"] if "libasan" in deps else []  # build-asan
        subprocess.run(["cc", "-o", str(exe), str(harness.REPO / "examples/budget_manager_example.c")]
                       + sanitize + flags, check=True, capture_output=True, timeout=120)
        libdir = lib.parent
        p = subprocess.run([str(exe), str(self.tmp / "costs.json")], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("spent $0.007500 of $10.00 today", p.stdout)


def documented_grant():
    """The privileges deploy/README.md grants the daemons' account."""
    text = (harness.REPO / "deploy/README.md").read_text()
    m = re.findall(r"^GRANT (.+) ON tollgate\.\* TO 'tollgate'@", text, re.M)
    if len(m) != 1:
        raise AssertionError("deploy/README.md should grant the daemons' account once: %r" % m)
    return m[0]


def schema_of(stack, db):
    """Every table's SHOW CREATE TABLE (auto-increment counters aside), and the recorded
    migrations. (schema_migrations itself is made before 006 converts the collations, so it
    has the database's original default: not compared.)"""
    tables = [r[0] for r in stack.sql("SHOW TABLES", db) if r[0] != "schema_migrations"]
    out = {}
    for t in tables:
        create = stack.sql("SHOW CREATE TABLE `%s`" % t, db)[0][1]
        out[t] = re.sub(r" AUTO_INCREMENT=\d+", "", create)
    out["(migrations)"] = stack.sql("SELECT version, name FROM schema_migrations ORDER BY version",
                                    db)
    return out


@unittest.skipUnless((build_dir() / "cmake_install.cmake").exists(),
                     "TOLLGATE_BIN is not the bin/ of a CMake build directory")
class DatabaseDocsTest(harness.StackTestCase):
    """The stack is migrated by accountd --migrate (the harness); then the documented
    steps are run against the same MariaDB."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix="tg-install-db-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.prefix = cls.tmp / "prefix"
        cmake_install(cls.prefix)

    def client_args(self):
        """mariadb client options reaching the stack's MariaDB as its admin."""
        admin = "root" if os.geteuid() == 0 else getpass.getuser()
        return ["--no-defaults", "-S", str(self.stack.db_dir / "mysqld.sock"), "-u", admin]

    def apply_schema(self, db):
        p = subprocess.run([str(self.prefix / "share/tollgate/apply-schema.sh")]
                           + self.client_args() + [db], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def test_apply_schema_equals_migrate(self):
        s = self.stack
        s.sql("CREATE DATABASE tollgate_manual CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", db=None)
        out = self.apply_schema("tollgate_manual")
        self.assertIn("schema at version 0; applying 001_init.sql", out)
        self.assertEqual(schema_of(s, "tollgate_manual"), schema_of(s, harness.DB_NAME))
        self.assertIn("nothing to apply", self.apply_schema("tollgate_manual"))
        # accountd agrees: nothing left to apply there
        s.sql("GRANT ALL PRIVILEGES ON tollgate_manual.* TO '%s'@'127.0.0.1'" % harness.DB_USER,
              db=None)
        cfg = s.make_config(database="tollgate_manual")
        rc, err = s.run_daemon_once("accountd", s.write_config("manual.yaml", cfg),
                                    ["--migrate"], timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertIn("(0 migrations applied)", err)

    def test_documented_grants_run_the_daemons(self):
        s = self.stack
        s.sql("CREATE USER 'tg_docs'@'127.0.0.1' IDENTIFIED BY 'docs-secret';"
              " GRANT %s ON %s.* TO 'tg_docs'@'127.0.0.1'" % (documented_grant(), harness.DB_NAME),
              db=None)
        for name in ("proxyd", "reportd", "accountd"):
            s.stop_one(name)
        s.config["general_settings"]["database_url"] = (
            "mysql://tg_docs:docs-secret@127.0.0.1:%d/%s" % (s.db_port, harness.DB_NAME))
        s.config_path.write_text(harness.dump_yaml(s.config))
        for name in ("accountd", "reportd", "proxyd"):
            s.restart(name)
        # management writes (reportd), a request and its ledger row (proxyd, accountd),
        # a budget period (accountd's staging tables), reports
        st, _, team = s.report("POST", "/team/new", {"team_alias": "ops", "max_budget": 5,
                                                     "budget_duration": "1d"},
                               key=harness.MASTER_KEY)
        self.assertEqual(st, 200, team)
        st, _, k = s.report("POST", "/key/generate", {"team_id": team["team_id"]},
                            key=harness.MASTER_KEY)
        self.assertEqual(st, 200, k)
        st, h, body = s.chat(k["key"], prompt_tokens=10, completion_tokens=20)
        self.assertEqual(st, 200, body)
        rid = h["x-litellm-call-id"]
        s.wait_for(lambda: s.sql("SELECT 1 FROM spend_logs WHERE request_id = '%s'" % rid),
                   timeout=15, message="the request never reached the ledger\n"
                   + s.log_tail("accountd"))
        spend = s.sql_value("SELECT spend FROM teams WHERE team_id = '%s'" % team["team_id"])
        self.assertEqual(Decimal(spend), harness.expected_cost(10, 20))
        st, _, logs = s.report("GET", "/spend/logs?request_id=" + rid, key=harness.MASTER_KEY)
        self.assertEqual(st, 200, logs)
        self.assertEqual(s.sql_value("SELECT COUNT(*) FROM rejected_events"), "0")
        for name in ("accountd", "reportd", "proxyd"):
            self.assertNotIn("denied", s.daemon_log(name).read_text(), name)


if __name__ == "__main__":
    unittest.main()
