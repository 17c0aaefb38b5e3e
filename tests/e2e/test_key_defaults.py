"""test_key_defaults.py - the config's defaults and caps of the key and user
routes (issue 26), with LiteLLM's meaning:

- default_key_generate_params fills what /key/generate leaves out (models also
  when [], metadata also when {}); budget_duration: null asks for no reset, and
  then the cap is the value;
- upperbound_key_generate_params: a field the request leaves out takes the
  cap; a value over it is refused 400 "<field> is over max limit set in config
  - user_value=..; max_value=.." on /key/generate, /key/update and
  /key/regenerate (which fill nothing);
- default_internal_user_params fills /user/new (not for a proxy_admin, except
  teams); max_internal_user_budget and internal_user_budget_duration give an
  internal user its budget when the request gives none;
- the values follow a SIGHUP of reportd; a value of the wrong type stops the
  start naming the file, line and key.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_key_defaults.py
"""

import copy
import datetime
import os
import signal
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

DEFAULTS = {
    "max_budget": Decimal("2.5"), "models": ["llama3"], "metadata": {"setting": "default"},
    "team_id": "core-infra", "budget_duration": "7d", "tpm_limit": 500,
    "duration": None,  # blank in LiteLLM's docs: no default
}
CAPS = {
    "max_budget": 100, "budget_duration": "10d", "duration": "30d",
    "max_parallel_requests": 50, "tpm_limit": 1000, "rpm_limit": 60,
}
USER_DEFAULTS = {"models": ["llama3"], "teams": ["core-infra"], "metadata": {"source": "config"}}
SETTINGS = {
    "default_key_generate_params": DEFAULTS,
    "upperbound_key_generate_params": CAPS,
    "default_internal_user_params": USER_DEFAULTS,
    "default_max_internal_user_budget": 3,
    "max_internal_user_budget": Decimal("10.5"),
    "internal_user_budget_duration": "1mo",
}


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


class KeyDefaultsTest(harness.StackTestCase):
    stack_options = {"extra_config": {"litellm_settings": SETTINGS}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, _, body = cls.stack.report("POST", "/team/new", {"team_id": "core-infra"},
                                       key=MASTER_KEY)
        assert st == 200, body
        cls.base_config = copy.deepcopy(cls.stack.config)

    # -- helpers

    def post(self, path, body):
        return self.stack.report("POST", path, body, key=MASTER_KEY)

    def ok(self, path, body):
        st, _, answer = self.post(path, body)
        self.assertEqual(st, 200, answer)
        return answer

    def info(self, token):
        st, _, body = self.stack.report("GET", "/key/info?key=" + token, key=MASTER_KEY)
        self.assertEqual(st, 200, body)
        return body["info"]

    def assert_over_cap(self, path, body, field, user, cap):
        st, _, answer = self.post(path, body)
        err = self.assertErrorShape(answer, 400, param=field, type_="invalid_request_error",
                                    msg=(path, body))
        self.assertEqual(err["message"], "%s is over max limit set in config - user_value=%s;"
                         " max_value=%s" % (field, user, cap))

    def assert_expires_in(self, key, days, before, after):
        expires = datetime.datetime.fromisoformat(key["expires"])
        span = datetime.timedelta(days=days)
        self.assertTrue(before.replace(microsecond=0) + span <= expires <= after + span,
                        (before, expires, after))

    def sighup(self):
        log = self.stack.daemon_log("reportd")
        count = log.read_text(errors="replace").count("config reloaded")
        self.stack.daemon("reportd").proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: log.read_text(errors="replace").count("config reloaded") > count,
                         timeout=10, message="reportd did not reload its config")

    # -- /key/generate

    def test_defaults_and_caps_fill_a_bare_generate(self):
        before = now_utc()
        k = self.ok("/key/generate", {})
        after = now_utc()
        stored = self.info(k["token"])
        for answer in (k, stored):
            self.assertEqual((answer["max_budget"], answer["models"], answer["metadata"],
                              answer["team_id"], answer["budget_duration"], answer["tpm_limit"]),
                             (Decimal("2.5"), ["llama3"], {"setting": "default"}, "core-infra",
                              "7d", 500), answer)
            # the caps are the values of what neither the request nor the defaults set
            self.assertEqual((answer["rpm_limit"], answer["max_parallel_requests"]), (60, 50))
            self.assert_expires_in(answer, 30, before, after)

    def test_the_request_wins_and_empty_lists_take_the_default(self):
        k = self.ok("/key/generate", {"max_budget": 100, "tpm_limit": 1000, "duration": "1d",
                                      "metadata": {"mine": True}, "models": [],
                                      "budget_duration": None})
        info = self.info(k["token"])
        self.assertEqual((info["max_budget"], info["tpm_limit"], info["metadata"], info["models"]),
                         (100, 1000, {"mine": True}, ["llama3"]))
        # an explicit null skips the default, not the cap
        self.assertEqual(info["budget_duration"], "10d")
        k = self.ok("/key/generate", {"metadata": {}, "budget_duration": "2d"})
        self.assertEqual((k["metadata"], k["budget_duration"]), ({"setting": "default"}, "2d"))

    def test_values_over_a_cap_are_refused(self):
        keys = self.stack.sql_value("SELECT COUNT(*) FROM api_keys")
        for field, value, user, cap in (("max_budget", 200, "200", "100"),
                                        ("max_budget", 100.01, "100.01", "100"),
                                        ("tpm_limit", 1001, "1001", "1000"),
                                        ("rpm_limit", 61, "61", "60"),
                                        ("max_parallel_requests", 51, "51", "50"),
                                        ("duration", "31d", "31d", "30d"),
                                        ("duration", "5w", "5w", "30d"),
                                        ("budget_duration", "11d", "11d", "10d"),
                                        ("budget_duration", "1mo", "1mo", "10d")):
            self.assert_over_cap("/key/generate", {field: value}, field, user, cap)
        self.assertEqual(self.stack.sql_value("SELECT COUNT(*) FROM api_keys"), keys,
                         "a refused request made no key")
        # the cap itself is allowed
        self.ok("/key/generate", {"max_budget": 100, "rpm_limit": 60, "duration": "720h"})

    # -- /key/update, /key/regenerate

    def test_update_and_regenerate_refuse_but_do_not_fill(self):
        k = self.ok("/key/generate", {"max_budget": 1})
        self.assert_over_cap("/key/update", {"key": k["key"], "max_budget": 250}, "max_budget",
                             "250", "100")
        self.assert_over_cap("/key/update", {"key": k["key"], "duration": "60d"}, "duration",
                             "60d", "30d")
        self.assert_over_cap("/key/regenerate", {"key": k["key"], "tpm_limit": 5000},
                             "tpm_limit", "5000", "1000")
        info = self.ok("/key/update", {"key": k["key"], "key_alias": "capped"})["info"]
        self.assertEqual((info["key_alias"], info["max_budget"]), ("capped", 1))
        info = self.ok("/key/update", {"key": k["key"], "max_budget": 99})["info"]
        self.assertEqual(info["max_budget"], 99)

    # -- /user/new

    def test_user_new_takes_the_user_defaults(self):
        u = self.ok("/user/new", {"user_id": "dflt-plain"})
        self.assertEqual((u["user_role"], u["max_budget"], u["budget_duration"], u["models"],
                          u["teams"], u["metadata"]),
                         ("internal_user", Decimal("10.5"), "1mo", ["llama3"], ["core-infra"],
                          {"source": "config"}))
        self.assertIsNotNone(u["budget_reset_at"])
        # a viewer gets the defaults but not an internal user's budget
        u = self.ok("/user/new", {"user_id": "dflt-viewer", "user_role": "internal_user_viewer"})
        self.assertEqual((u["max_budget"], u["budget_duration"], u["models"], u["teams"]),
                         (None, None, ["llama3"], ["core-infra"]))
        # a proxy_admin: only the default teams
        u = self.ok("/user/new", {"user_id": "dflt-admin", "user_role": "proxy_admin"})
        self.assertEqual((u["max_budget"], u["models"], u["metadata"], u["teams"]),
                         (None, [], {}, ["core-infra"]))
        # what the request gives wins; [] models take the default, [] teams stay none
        u = self.ok("/user/new", {"user_id": "dflt-own", "max_budget": 3, "models": [],
                                  "teams": [], "budget_duration": "1d"})
        self.assertEqual((u["max_budget"], u["budget_duration"], u["models"], u["teams"]),
                         (3, "1d", ["llama3"], []))

    # -- reload, refused starts

    def test_new_values_follow_a_reload(self):
        cfg = copy.deepcopy(self.base_config)
        ls = cfg["litellm_settings"]
        ls["upperbound_key_generate_params"] = {"max_budget": 20}
        ls["default_key_generate_params"] = {"max_budget": 4, "models": ["llama3"]}
        ls["max_internal_user_budget"] = 7
        try:
            self.stack.config_path.write_text(harness.dump_yaml(cfg))
            self.sighup()
            self.assert_over_cap("/key/generate", {"max_budget": 50}, "max_budget", "50", "20")
            k = self.ok("/key/generate", {"tpm_limit": 5000})  # no tpm cap any more
            self.assertEqual((k["max_budget"], k["tpm_limit"], k["team_id"], k["expires"]),
                             (4, 5000, None, None))
            self.assertEqual(self.ok("/user/new", {"user_id": "after-reload"})["max_budget"], 7)
        finally:
            self.stack.config_path.write_text(harness.dump_yaml(self.base_config))
            self.sighup()
        self.assert_over_cap("/key/generate", {"max_budget": 150}, "max_budget", "150", "100")

    def test_a_value_of_the_wrong_type_stops_the_start(self):
        # (section, field, value, what the error says, its line after the field's)
        for section, field, value, want, below in (
                ("upperbound_key_generate_params", "tpm_limit", "lots", "must be an integer", 0),
                ("default_key_generate_params", "metadata", ["a"], "must be a mapping", 1),
                ("default_key_generate_params", "soft_budget", 1, "not applied by Tollgate", 0),
                ("default_internal_user_params", "user_role", "boss", "must be one of", 0)):
            cfg = copy.deepcopy(self.base_config)
            cfg["litellm_settings"][section] = {field: value}
            path = self.stack.write_config("bad-%s.yaml" % field, cfg)
            text = path.read_text().splitlines()
            at = next(i for i, l in enumerate(text, 1) if l.strip().startswith(section + ":"))
            rc, err = self.stack.run_daemon_once("reportd", path)
            self.assertNotEqual(rc, 0, err)
            self.assertIn("%s:%d: litellm_settings.%s.%s: %s" % (path, at + 1 + below, section,
                                                                 field, want), err)

if __name__ == "__main__":
    import unittest
    unittest.main()
