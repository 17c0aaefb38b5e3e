"""test_route_access.py - general_settings.allowed_routes, admin_only_routes and
public_routes on
proxyd (data plane) and reportd (management and reports), directly and through the
control-plane paths proxyd forwards to reportd.

allowed_routes (LiteLLM: auth_utils.py pre_db_read_auth_checks) lets through only
the routes it lists, compared exactly (/chat/completions is not /v1/chat/completions),
plus the routes of the LiteLLMRoutes.<group> names it lists; the others are answered
403 "Access forbidden: Route <route> not allowed" for every caller, the master key
included, and before the key is read (no key: still 403). Routes needing no key (the
health checks) are not affected. admin_only_routes (route_checks.py
custom_admin_only_route_check) refuses the routes it lists (exact, "prefix*", groups)
to every key that is not an admin's: 403 "user not allowed to access this route.
Route=<route> is an admin only route"; the master key and a proxy_admin user's key
pass. public_routes (auth_utils.py route_in_additonal_public_routes) serves
its routes without a key, after allowed_routes and before admin_only_routes; Tollgate
lets it list /spend/calculate and LiteLLMRoutes.public_routes. Errors are in the
route's shape: OpenAI's, or Anthropic's on /v1/messages.

Run from the repo root:  python3 tests/e2e/run.py tests/e2e/test_route_access.py
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY  # noqa: E402

ALLOWED = ["/chat/completions", "/v1/messages", "/spend/logs", "/spend/calculate",
           "LiteLLMRoutes.management_routes", "LiteLLMRoutes.info_routes"]
ADMIN_ONLY = ["/key/info", "/v1/messages", "/spend/*"]
PUBLIC = ["LiteLLMRoutes.public_routes", "/spend/calculate"]


def not_allowed(route):
    return "Access forbidden: Route %s not allowed" % route


def admin_only(route):
    return "user not allowed to access this route. Route=%s is an admin only route" % route


class RouteAccessTest(harness.StackTestCase):
    stack_options = {"extra_models": harness.protocol_models, "extra_config": {
        "general_settings": {"allowed_routes": ALLOWED, "admin_only_routes": ADMIN_ONLY,
                             "public_routes": PUBLIC}}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user_key = cls.new_key("internal_user")
        cls.admin_key = cls.new_key("proxy_admin")

    @classmethod
    def new_key(cls, role):
        """A key of a new internal user with this role (both calls are management_routes)."""
        user = "ra-%s-%s" % (role, uuid.uuid4().hex[:8])
        st, _, b = cls.stack.report("POST", "/user/new", {"user_id": user, "user_role": role},
                                    key=MASTER_KEY)
        assert st == 200, b
        st, _, b = cls.stack.report("POST", "/key/generate", {"user_id": user}, key=MASTER_KEY)
        assert st == 200, b
        return b["key"]

    def assertRefused(self, answer, message):
        st, _, body = answer
        self.assertEqual(st, 403, body)
        err = self.assertErrorShape(body, 403, param=None, type_="permission_error")
        self.assertEqual(err["message"], message)

    def chat_body(self):
        return {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}

    def messages(self, key):
        return self.stack.proxy("POST", "/v1/messages", {
            "model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"})

    # -- allowed_routes

    def test_unlisted_data_plane_routes_refused_before_the_key(self):
        calls = len(self.stack.upstream_requests())
        for path in ("/v1/chat/completions", "/embeddings", "/v1/completions"):
            for key in (MASTER_KEY, self.user_key, None, "sk-not-a-key"):
                with self.subTest(path=path, key=key):
                    self.assertRefused(self.stack.proxy("POST", path, self.chat_body(), key),
                                       not_allowed(path))
        self.assertEqual(len(self.stack.upstream_requests()), calls, "no call went upstream")

    def test_listed_route_and_group_let_through(self):
        for key in (MASTER_KEY, self.user_key):
            st, _, b = self.stack.proxy("POST", "/chat/completions", self.chat_body(), key)
            self.assertEqual(st, 200, b)
            for path in ("/models", "/v1/models"):  # LiteLLMRoutes.info_routes
                st, _, b = self.stack.proxy("GET", path, key=key)
                self.assertEqual(st, 200, b)
                self.assertIn("llama3", [m["id"] for m in b["data"]])
        st, _, b = self.stack.proxy("GET", "/health/liveliness")  # needs no key: not checked
        self.assertEqual(st, 200, b)

    def test_unlisted_reportd_routes_refused_directly_and_forwarded(self):
        for path in ("/global/spend/report", "/budget/list", "/spend/tags"):
            for send in (self.stack.report, self.stack.proxy):
                for key in (MASTER_KEY, None):
                    with self.subTest(path=path, port=send.__name__, key=key):
                        self.assertRefused(send("GET", path, key=key), not_allowed(path))

    def test_reportd_group_routes_let_through(self):
        # management_routes: /user/new and /key/generate (setUpClass), /team/new, and
        # /team/member_add through LiteLLM's "/team/{team_id}" entry
        team = "ra-team-%s" % uuid.uuid4().hex[:8]
        for send in (self.stack.report, self.stack.proxy):
            st, _, b = send("POST", "/team/new", {"team_alias": team}, key=MASTER_KEY)
            self.assertEqual(st, 200, b)
            team_id = b["team_id"]
            st, _, b = send("GET", "/team/info?team_id=" + team_id, key=MASTER_KEY)
            self.assertEqual(st, 200, b)
            user = "ra-member-%s" % uuid.uuid4().hex[:8]
            st, _, b = send("POST", "/user/new", {"user_id": user}, key=MASTER_KEY)
            self.assertEqual(st, 200, b)
            st, _, b = send("POST", "/team/member_add",
                            {"team_id": team_id, "member": {"user_id": user}}, key=MASTER_KEY)
            self.assertEqual(st, 200, b)

    # -- admin_only_routes

    def test_admin_only_reportd_route_refuses_non_admin_keys(self):
        for send in (self.stack.report, self.stack.proxy):
            path = "/key/info?key=" + self.user_key
            self.assertRefused(send("GET", path, key=self.user_key), admin_only("/key/info"))
            for key in (MASTER_KEY, self.admin_key):
                st, _, b = send("GET", path, key=key)
                self.assertEqual(st, 200, b)

    def test_admin_only_wildcard(self):
        # /spend/logs is allowed, and admin-only through "/spend/*"
        today = harness.utc_today()
        path = "/spend/logs?start_date=%s&end_date=%s" % (today, today)
        self.assertRefused(self.stack.report("GET", path, key=self.user_key),
                           admin_only("/spend/logs"))
        st, _, b = self.stack.report("GET", path, key=MASTER_KEY)
        self.assertEqual(st, 200, b)

    def test_admin_only_data_plane_route_in_anthropic_shape(self):
        st, _, body = self.messages(self.user_key)
        self.assertEqual(st, 403, body)
        self.assertEqual(body, {"type": "error", "error": {
            "type": "permission_error", "message": admin_only("/v1/messages")}})
        for key in (MASTER_KEY, self.admin_key):  # a proxy_admin user's key is an admin too
            st, _, body = self.messages(key)
            self.assertEqual(st, 200, body)
            self.assertEqual(body["type"], "message")

    # -- public_routes

    def test_public_route_served_without_a_key(self):
        body = {"model": "llama3", "messages": [{"role": "user", "content": "hello"}]}
        # no key, a wrong key, and a non-admin key on a route admin_only_routes'
        # "/spend/*" covers: public_routes comes first, as in LiteLLM
        for send in (self.stack.report, self.stack.proxy):
            for key in (None, "sk-not-a-key", self.user_key):
                with self.subTest(port=send.__name__, key=key):
                    st, _, b = send("POST", "/spend/calculate", body, key=key)
                    self.assertEqual(st, 200, b)
                    self.assertGreater(b["cost"], 0)
        # a route public_routes does not list still needs its key
        st, _, b = self.stack.report("GET", "/key/list")
        self.assertEqual(st, 401, b)


if __name__ == "__main__":
    import unittest
    unittest.main()
