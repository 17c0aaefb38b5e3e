"""test_price_corpus.py - every golden pricing case, end to end through the real daemons.

tests/data/cost_cases.jsonl holds the golden cases of the price library (one JSON per
line: case, family, rule, model, optional base_model / input_cost_per_token /
output_cost_per_token, call "chat" (default) | "embedding" | "image", usage (the
upstream's usage object), size / quality / n (image calls), request (more request
fields), response (more top-level answer fields), duration_us (per-second cases) and
expected, an exact decimal). unit_price checks them against the library alone; this
file checks that proxyd and accountd carry every bucket the price depends on from
the upstream's answer and the client's request to the header and the ledger.

One stack for all cases. Case i is the model group "case-<i>": one deployment
"openai/case-<i>" on the fake upstream, base_model the case's base_model or else its
model (so native-protocol models such as anthropic/ or bedrock/ are priced by their
map entries while the relay speaks OpenAI), with the case's custom per-token prices.
The fake upstream reports the case's usage verbatim (mock_usage_raw) and its answer
fields (mock_answer_fields); the client's request carries the case's request fields.
Then, compared as decimal.Decimal, exactly:

- x-litellm-response-cost == the spend_logs row's spend (by x-litellm-call-id) ==
  expected; per-second cases (map entry with input/output_cost_per_second) run for a
  real duration, so there header == spend == (input_cost_per_second +
  output_cost_per_second) * (end_time - start_time of the row) / 10^6, rounded half
  away from zero at 20 decimals (and that formula gives the case's expected for its
  duration_us);
- every chat case with a usage once more, streamed with stream_options.include_usage:
  usage.cost of the final chunk is the double nearest to the row's exact spend, and the
  row's spend == expected (per-second: the formula with that row's duration);
- for one case of each family (the one reporting the most buckets) the row's bucket
  columns (schema/011_usage_buckets.sql) are the buckets of the case's usage, request
  and answer;
- POST /spend/calculate {"completion_response": {"model": "case-<i>", "usage", ...the
  answer fields}} on reportd agrees with the header (reportd writes money rounded to
  10 decimals as a JSON number) for the first token case of each family whose price
  needs no request field (no web_search_options).

Every assertion message names the case. Run from the repo root:
    python3 tests/e2e/run.py tests/e2e/test_price_corpus.py
"""

import decimal
import http.client
import json
import os
import sys
import unittest
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import invariants  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "data" / "cost_cases.jsonl"
LEDGER_TIMEOUT = 30.0
EXACT = decimal.Context(prec=80)  # no rounding in the expected figures

# The ledger's bucket columns, in the order they are selected and compared.
BUCKET_COLUMNS = ("prompt_tokens", "completion_tokens", "cache_read_input_tokens",
                  "cache_creation_input_tokens", "cache_creation_1h_input_tokens",
                  "prompt_audio_tokens", "prompt_image_tokens", "reasoning_tokens",
                  "completion_audio_tokens", "completion_image_tokens", "web_search_requests",
                  "search_context_size", "service_tier", "images", "image_size", "image_quality")
NULL_FOR_NONE = frozenset(BUCKET_COLUMNS[4:])  # schema 011's: NULL when none
DURATION = "TIMESTAMPDIFF(MICROSECOND, start_time, end_time)"  # the row's, in microseconds
ROW_COLUMNS = ("request_id", "spend", "pricing", "call_type", "model_group",
               DURATION) + BUCKET_COLUMNS


# ------------------------------------------------------------------- the corpus

def load_corpus(path=CORPUS):
    """(cases, problems): the parsed lines, each with its index "i", and one line of
    text for each line that does not parse or lacks case, model or expected."""
    cases, problems = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                c = json.loads(line)
            except ValueError as e:
                problems.append("line %d does not parse: %s" % (n, e))
                continue
            missing = [k for k in ("case", "model", "expected") if not isinstance(c, dict)
                       or not isinstance(c.get(k), str)]
            if missing:
                problems.append("line %d lacks %s" % (n, ", ".join(missing)))
                continue
            c["i"] = len(cases)
            cases.append(c)
    return cases, problems


CASES, CORPUS_PROBLEMS = load_corpus()


def call_of(case):
    return case.get("call") or "chat"


def group(case):
    return "case-%d" % case["i"]


def price_name(case):
    return case.get("base_model") or case["model"]


def map_entry(case):
    """The case's entry of the shipped price map (name as written, else the part after
    the first "/"), read exactly; None when the map has neither."""
    name = price_name(case)
    for candidate in (name, name.split("/", 1)[-1]):
        try:
            return invariants.price_entry(candidate)
        except KeyError:
            continue
    return None


def per_second_rate(case):
    """input_cost_per_second + output_cost_per_second of the case's map entry, or None
    when the model is not priced per second."""
    entry = map_entry(case) or {}
    if "input_cost_per_second" not in entry and "output_cost_per_second" not in entry:
        return None
    return (Decimal(str(entry.get("input_cost_per_second", "0"))) +
            Decimal(str(entry.get("output_cost_per_second", "0"))))


def per_second_cost(rate, duration_us):
    """rate * duration_us / 10^6, rounded half away from zero at 20 decimals."""
    exact = EXACT.divide(EXACT.multiply(rate, Decimal(duration_us)), Decimal(10 ** 6))
    return exact.quantize(Decimal("1e-20"), rounding=ROUND_HALF_UP, context=EXACT)


def as_json_money(d):
    """An exact amount as reportd writes it: rounded half up to 10 decimals, %.15g."""
    return Decimal("%.15g" % float(d.quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)))


def extra_models(stack):
    models = []
    for c in CASES:
        params = {"model": "openai/" + group(c), "api_base": stack.upstream_base,
                  "api_key": "os.environ/GROQ_API_KEY"}
        for k in ("input_cost_per_token", "output_cost_per_token"):
            if c.get(k) is not None:
                params[k] = str(c[k])
        models.append({"model_name": group(c), "litellm_params": params,
                       "model_info": {"base_model": price_name(c)}})
    return models


# ------------------------------------------------------------------ the buckets

def _count(obj, name):
    v = obj.get(name) if isinstance(obj, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def expected_buckets(case):
    """The bucket columns' values for the case, from its usage, request and answer, as
    the ledger writes them (strings; None for NULL)."""
    u = case.get("usage") or {}
    req = dict(case.get("request") or {})
    pd, cd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    tools = u.get("server_tool_use") or {}
    split = u.get("cache_creation")
    if not isinstance(split, dict):
        split = pd.get("cache_creation_token_details") or {}
    writes = (_count(u, "cache_creation_input_tokens") or _count(pd, "cache_creation_tokens") or
              _count(split, "ephemeral_5m_input_tokens") +
              _count(split, "ephemeral_1h_input_tokens"))
    image = call_of(case) == "image"
    search = req.get("web_search_options")
    size = case.get("size") if image else None
    quality = case.get("quality") if image else None
    tier = (case.get("response") or {}).get("service_tier")  # the answer's, else the request's
    if not (isinstance(tier, str) and tier):
        tier = req.get("service_tier")
    values = {
        "prompt_tokens": _count(u, "prompt_tokens"),
        "completion_tokens": _count(u, "completion_tokens"),
        "cache_read_input_tokens": (_count(u, "cache_read_input_tokens") or
                                    _count(pd, "cached_tokens") or
                                    _count(u, "prompt_cache_hit_tokens")),
        "cache_creation_input_tokens": writes,
        "cache_creation_1h_input_tokens": _count(split, "ephemeral_1h_input_tokens"),
        "prompt_audio_tokens": _count(pd, "audio_tokens"),
        "prompt_image_tokens": _count(pd, "image_tokens"),
        "reasoning_tokens": _count(cd, "reasoning_tokens"),
        "completion_audio_tokens": _count(cd, "audio_tokens"),
        "completion_image_tokens": _count(cd, "image_tokens"),
        "web_search_requests": (_count(tools, "web_search_requests") or
                                _count(pd, "web_search_requests")),
        "search_context_size": (None if not isinstance(search, dict)
                                else search.get("search_context_size") or ""),
        "service_tier": tier if isinstance(tier, str) and tier else None,
        "images": (case.get("n") or 1) if image else 0,
        "image_size": (size if size and size != "auto" else "1024x1024") if image else None,
        "image_quality": quality if quality and quality != "auto" else None,
    }
    # Schema 011's columns are NULL for none (accountd leaves them out of rows
    # that report none); the older token columns are 0.
    return {k: (None if v is None or (v == 0 and k in NULL_FOR_NONE) else str(v))
            for k, v in values.items()}


def bucket_weight(case):
    """How many buckets beyond prompt and completion tokens the case reports."""
    b = expected_buckets(case)
    return sum(1 for k, v in b.items() if k not in ("prompt_tokens", "completion_tokens")
               and v not in (None, "0"))


def bucket_cases():
    """One case of each family (family, else call type): the one with most buckets."""
    best = {}
    for c in CASES:
        fam = c.get("family") or call_of(c)
        if fam not in best or bucket_weight(c) > bucket_weight(best[fam]):
            best[fam] = c
    return list(best.values())


def calculate_cases():
    """A few token cases /spend/calculate can price from an answer alone: chat with a
    usage, no web_search_options in the request, not per second; the first of each family."""
    fit = [c for c in CASES if call_of(c) == "chat" and c.get("usage") and
           "web_search_options" not in (c.get("request") or {}) and per_second_rate(c) is None]
    chosen, families = [], set()
    for c in fit:
        if (c.get("family") or "") not in families:
            families.add(c.get("family") or "")
            chosen.append(c)
    return chosen


# ------------------------------------------------------------------ the requests

def request_body(case, stream=False):
    call = call_of(case)
    body = {"model": group(case)}
    if call == "embedding":
        body["input"] = "embed me"
    elif call == "image":
        body["prompt"] = "a lighthouse at dawn"
        for k in ("size", "quality", "n"):
            if case.get(k) is not None:
                body[k] = case[k]
    else:
        body["messages"] = [{"role": "user", "content": "hello"}]
    body.update(case.get("request") or {})
    if case.get("usage") is not None:
        body["mock_usage_raw"] = case["usage"]
    if case.get("response"):
        body["mock_answer_fields"] = case["response"]
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


PATHS = {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings",
         "image": "/v1/images/generations"}


def stream_request(port, body):
    """POSTs a streamed chat completion; returns (status, headers, SSE events' data)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", PATHS["chat"], json.dumps(body),
                     {"Authorization": "Bearer " + MASTER_KEY,
                      "Content-Type": "application/json"})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        raw = resp.read().decode(errors="replace")
    finally:
        conn.close()
    events = [ev[len("data: "):] for ev in raw.split("\n\n") if ev.startswith("data: ")]
    return resp.status, headers, events


def final_usage_cost(events):
    """usage.cost of the stream's usage chunk (its last chunk), parsed as Python parses
    a JSON float, and the text it was written as; (None, why) when there is none."""
    chunks = [(json.loads(e), e) for e in events if e.startswith("{")]
    with_usage = [(c, e) for c, e in chunks if isinstance(c.get("usage"), dict)]
    if len(with_usage) != 1 or with_usage[0][1] != chunks[-1][1]:
        return None, "%d usage chunks, not just the last, in %r" % (len(with_usage), events)
    chunk, text = with_usage[0]
    cost = chunk["usage"].get("cost")
    if not isinstance(cost, float):
        return None, "usage.cost is %r (want a JSON float) in %s" % (cost, text)
    return cost, text


class PriceCorpusTest(harness.StackTestCase):
    stack_options = {"extra_models": extra_models}

    plain = {}     # case index -> (status, headers, body)
    streamed = {}  # case index -> (status, headers, events)
    rows = {}      # request id -> {column: value}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.stack
        for c in CASES:
            cls.plain[c["i"]] = s.proxy("POST", PATHS[call_of(c)], request_body(c), MASTER_KEY)
            if call_of(c) == "chat" and c.get("usage") is not None:
                cls.streamed[c["i"]] = stream_request(s.proxyd_port, request_body(c, True))
        ids = [h.get("x-litellm-call-id") for st, h, _ in
               list(cls.plain.values()) + list(cls.streamed.values()) if st == 200]
        ids = [i for i in ids if i]
        if not ids:
            return
        where = "request_id IN (%s)" % ", ".join("'%s'" % i for i in ids)
        try:
            wait_for(lambda: int(s.sql_value("SELECT COUNT(*) FROM spend_logs WHERE " + where))
                     == len(ids), LEDGER_TIMEOUT)
        except AssertionError:
            pass  # the tests say which rows are missing
        for r in s.sql("SELECT %s FROM spend_logs WHERE %s" % (", ".join(ROW_COLUMNS), where)):
            cls.rows[r[0]] = dict(zip(ROW_COLUMNS, r))

    # ------------------------------------------------------------- helpers

    def row_of(self, case, headers, what):
        rid = headers.get("x-litellm-call-id")
        self.assertTrue(rid, "%s: %s answer has no x-litellm-call-id" % (case["case"], what))
        row = self.rows.get(rid)
        self.assertIsNotNone(row, "%s: no spend_logs row for the %s request %s"
                             % (case["case"], what, rid))
        self.assertEqual(row["pricing"], "priced", "%s: %s row %r" % (case["case"], what, row))
        return row

    def want(self, case, row):
        """The exact cost the row must have: expected, or the per-second formula with the
        row's own duration."""
        rate = per_second_rate(case)
        if rate is None:
            return Decimal(case["expected"])
        return per_second_cost(rate, int(row[DURATION]))

    def plain_row(self, case):
        st, h, body = self.plain[case["i"]]
        self.assertEqual(st, 200, "%s: plain request answered %d: %r" % (case["case"], st, body))
        return h, self.row_of(case, h, "plain")

    # --------------------------------------------------------------- tests

    def test_corpus_parses(self):
        self.assertEqual(CORPUS_PROBLEMS, [], "%s: lines that cannot be run" % CORPUS)
        self.assertGreater(len(CASES), 0, "%s holds no case" % CORPUS)
        print("\n%d cases (%d streamed, %d per second) from %s"
              % (len(CASES), len(self.streamed),
                 sum(per_second_rate(c) is not None for c in CASES), CORPUS.name),
              file=sys.stderr)
        for c in CASES:
            with self.subTest(case=c["case"]):
                self.assertTrue(c.get("usage") is not None or call_of(c) == "image",
                                "%s: a %s case without usage cannot be run" % (c["case"],
                                                                               call_of(c)))
                self.assertIn(call_of(c), PATHS, "%s: unknown call" % c["case"])
                if per_second_rate(c) is not None and c.get("duration_us") is not None:
                    self.assertEqual(per_second_cost(per_second_rate(c), c["duration_us"]),
                                     Decimal(c["expected"]),
                                     "%s: (input + output cost per second) * duration_us"
                                     " differs from expected" % c["case"])

    def test_header_ledger_expected(self):
        for c in CASES:
            with self.subTest(case=c["case"]):
                h, row = self.plain_row(c)
                header = h.get("x-litellm-response-cost")
                self.assertIsNotNone(header, "%s: no x-litellm-response-cost" % c["case"])
                want = self.want(c, row)
                self.assertTrue(Decimal(header) == Decimal(row["spend"]) == want,
                                "%s: header %s, ledger %s, expected %s%s"
                                 % (c["case"], header, row["spend"], want,
                                    " (per second, %s us)" % row[DURATION]
                                    if per_second_rate(c) is not None else ""))

    def test_streamed_usage_cost(self):
        for c in CASES:
            if c["i"] not in self.streamed:
                continue
            with self.subTest(case=c["case"]):
                st, h, events = self.streamed[c["i"]]
                self.assertEqual(st, 200, "%s: streamed request answered %d: %r"
                                 % (c["case"], st, events))
                self.assertEqual(events[-1:], ["[DONE]"], "%s: stream end" % c["case"])
                row = self.row_of(c, h, "streamed")
                want = self.want(c, row)
                self.assertEqual(Decimal(row["spend"]), want, "%s: streamed: ledger %s,"
                                 " expected %s" % (c["case"], row["spend"], want))
                cost, text = final_usage_cost(events)
                self.assertIsNotNone(cost, "%s: streamed: %s" % (c["case"], text))
                self.assertEqual(cost, float(Decimal(row["spend"])),
                                 "%s: streamed: usage.cost %r is not the double nearest to the"
                                 " ledger's %s (%r); chunk: %s"
                                 % (c["case"], cost, row["spend"], float(Decimal(row["spend"])),
                                    text))

    def test_bucket_columns(self):
        chosen = bucket_cases()
        print("\nbucket columns checked for: %s" % "; ".join(c["case"] for c in chosen),
              file=sys.stderr)
        for c in chosen:
            with self.subTest(case=c["case"]):
                _, row = self.plain_row(c)
                got = {k: row[k] for k in BUCKET_COLUMNS}
                want = expected_buckets(c)
                diff = {k: (got[k], want[k]) for k in BUCKET_COLUMNS if got[k] != want[k]}
                self.assertEqual(diff, {}, "%s: bucket columns (ledger, usage) differ: %r"
                                 % (c["case"], diff))
                self.assertEqual((row["call_type"], row["model_group"]),
                                 ({"chat": "chat_completion", "embedding": "embedding",
                                   "image": "image_generation"}[call_of(c)], group(c)),
                                 "%s: call type and model group" % c["case"])

    def test_spend_calculate_agrees(self):
        chosen = calculate_cases()
        self.assertTrue(chosen, "no token case for /spend/calculate")
        print("\n/spend/calculate checked for: %s" % "; ".join(c["case"] for c in chosen),
              file=sys.stderr)
        for c in chosen:
            with self.subTest(case=c["case"]):
                h, _ = self.plain_row(c)
                answer = dict(c.get("response") or {}, model=group(c), usage=c["usage"])
                st, _, body = self.stack.report("POST", "/spend/calculate",
                                                {"completion_response": answer}, key=MASTER_KEY)
                self.assertEqual(st, 200, "%s: /spend/calculate: %r" % (c["case"], body))
                header = Decimal(h["x-litellm-response-cost"])
                self.assertEqual(Decimal(body["cost"]), as_json_money(header),
                                 "%s: /spend/calculate says %s, header %s (expected %s)"
                                 % (c["case"], body["cost"], header, c["expected"]))


if __name__ == "__main__":
    unittest.main()
