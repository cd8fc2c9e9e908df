"""everruns-admin migrate (ARCHITECTURE 9): it records the SHA-256 of
every applied file in schema_migrations, fills the checksums of rows
applied before checksums existed on its first run, refuses (applying
nothing) an applied file whose text changed, and refuses two files with
one number. Each test migrates a scratch schema of its own in the test
stack's database (search_path set in the connection string) with small
SQL files of its own."""

import hashlib
import os
import subprocess
import unittest
import uuid

import evr
from stacks import state_dir


def _scratch_url(schema):
    base = evr.stack_env("EVR_DATABASE_URL") or ""
    if "://" in base:
        return None
    # the last `options` wins in a conninfo
    return base + " options='-csearch_path=%s'" % schema


def _psql(url, sql):
    p = subprocess.run(evr._as_run_user([evr._psql_bin(), "-X", "-q", "-A", "-t",
                                         "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                       env=evr._stack_environ(), universal_newlines=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql: " + p.stderr)
    return p.stdout.strip()


class Migrate(unittest.TestCase):
    def setUp(self):
        self.db = "evr_migtest_" + uuid.uuid4().hex[:10]
        self.url = _scratch_url(self.db)
        if not self.url:
            self.skipTest("the stack's database_url is a URI")
        evr.psql("CREATE SCHEMA %s" % self.db)
        self.dir = state_dir("migrate")
        os.chmod(self.dir, 0o755)

    def tearDown(self):
        evr.psql("DROP SCHEMA IF EXISTS %s CASCADE" % self.db)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    def remove(self, name):
        os.unlink(os.path.join(self.dir, name))

    def migrate(self):
        env = evr._stack_environ()
        env["EVERRUNS_DATABASE_URL"] = self.url
        return subprocess.run(evr._as_run_user([evr._admin_bin(), "migrate", "--sql-dir", self.dir]),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/",
                              universal_newlines=True, timeout=120)

    def q(self, sql):
        return _psql(self.url, sql)

    def sha(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def test_changed_applied_file_is_refused(self):
        self.write("001_a.sql", "CREATE TABLE mt_a (x int);\n")
        self.write("002_b.sql", "CREATE FUNCTION mt_f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrations: 2 applied", p.stdout)
        self.assertEqual(self.q("SELECT version || ' ' || checksum FROM schema_migrations "
                                "ORDER BY version").split("\n"),
                         ["001_a " + self.sha("001_a.sql"), "002_b " + self.sha("002_b.sql")])
        # the function body is changed in place, and a new file comes with it
        self.write("002_b.sql", "CREATE FUNCTION mt_f() RETURNS int LANGUAGE sql AS 'SELECT 2';\n")
        self.write("003_c.sql", "CREATE TABLE mt_c (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("002_b.sql was changed after it was applied", p.stderr)
        self.assertIn("new migration", p.stderr)
        # nothing applied: not the new file either
        self.assertEqual(self.q("SELECT count(*) FROM schema_migrations"), "2")
        self.assertEqual(self.q("SELECT to_regclass('mt_c') IS NULL"), "t")
        self.assertEqual(self.q("SELECT mt_f()"), "1")
        # the change as a new migration is the way
        self.write("002_b.sql", "CREATE FUNCTION mt_f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n")
        self.write("004_d.sql", "CREATE OR REPLACE FUNCTION mt_f() RETURNS int LANGUAGE sql "
                                "AS 'SELECT 2';\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrations: 2 applied, 4 known", p.stdout)
        self.assertEqual(self.q("SELECT mt_f()"), "2")

    def test_checksums_recorded_after_upgrade(self):
        # an installation migrated before checksums existed
        self.q("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
               "applied_at timestamptz NOT NULL DEFAULT now()); "
               "CREATE TABLE mt_a (x int); INSERT INTO schema_migrations VALUES ('001_a')")
        self.write("001_a.sql", "CREATE TABLE mt_a (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrations: 0 applied", p.stdout)
        self.assertEqual(self.q("SELECT checksum FROM schema_migrations"), self.sha("001_a.sql"))
        self.write("001_a.sql", "CREATE TABLE mt_a (x int, y int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("001_a.sql was changed after it was applied", p.stderr)

    def test_duplicate_number_is_refused(self):
        self.write("001_a.sql", "CREATE TABLE mt_a (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.write("002_b.sql", "CREATE TABLE mt_b (x int);\n")
        self.write("002_c.sql", "CREATE TABLE mt_c (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("002_b.sql and 002_c.sql share the number 002", p.stderr)
        self.assertEqual(self.q("SELECT string_agg(version, ',') FROM schema_migrations"), "001_a")
        self.assertEqual(self.q("SELECT to_regclass('mt_b') IS NULL AND to_regclass('mt_c') IS NULL"),
                         "t")
        # a new file may not take the number of an applied one either
        self.remove("002_b.sql")
        self.write("001_z.sql", "CREATE TABLE mt_z (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("share the number 001", p.stderr)
        self.remove("001_z.sql")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrations: 1 applied, 2 known", p.stdout)

    def test_the_two_files_numbered_006_are_allowed(self):
        self.write("006_metrics.sql", "CREATE TABLE mt_m (x int);\n")
        self.write("006_session_fs.sql", "CREATE TABLE mt_s (x int);\n")
        p = self.migrate()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("migrations: 2 applied", p.stdout)


if __name__ == "__main__":
    unittest.main()
