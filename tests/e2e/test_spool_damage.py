"""test_spool_damage.py - proxyd's spool recovery keeps every good record.

With accountd down proxyd spools 10,000 answered requests in one segment and
is killed. The test reads the segment as proxyd/spool.c writes it (format 2:
[magic FF 54 47 FE][u32 payload length][u32 CRC-32 of the length field and
the payload][payload], payload [u8 'E'/'A'][u16 id length][request id][event]),
then damages it at several places: the magic, a length, a CRC, an event's
bytes, a request id, a type byte, two neighbouring records at once, and a torn
last record. After accountd and proxyd start again the ledger holds exactly
the events whose records were intact, each once; the damaged bytes are in
spool_dir/damaged/ (0600), the warnings name no request, and the metrics
tollgate_proxyd_spool_damaged_{ranges,bytes}_total count them.

A second test turns the spool into format 1 segments (no magic: what proxyd
wrote before) and damages one event: every event before it is still
delivered, and the rest of that segment, which format 1 cannot resynchronise
on, is set aside whole (deploy/README.md, "Health, metrics and logs").
"""

import http.client
import json
import os
import re
import stat
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import MASTER_KEY, wait_for  # noqa: E402

EVENTS = 10000
CLIENTS = 4
MAGIC = b"\xffTG\xfe"
HEADER2 = 12
RECOVERY_MS_MAX = 5000  # a 10,000-event segment with this damage recovers in ~20-250 ms


class Rec:
    """One record of a segment: where it is and what it holds."""

    def __init__(self, off, size, kind, rid, idlen):
        self.off, self.size, self.kind, self.rid, self.idlen = off, size, kind, rid, idlen


def read_format2(data):
    """The records of an intact format 2 segment (asserts it is one)."""
    out, at = [], 0
    while at < len(data):
        assert data[at:at + 4] == MAGIC, "no magic at offset %d" % at
        n, crc = struct.unpack_from(">II", data, at + 4)
        payload = data[at + HEADER2:at + HEADER2 + n]
        assert len(payload) == n, "torn record at %d" % at
        assert zlib.crc32(payload, zlib.crc32(data[at + 4:at + 8])) == crc, "bad CRC at %d" % at
        idlen = struct.unpack_from(">H", payload, 1)[0]
        out.append(Rec(at, HEADER2 + n, payload[:1].decode(), payload[3:3 + idlen].decode(),
                       idlen))
        at += HEADER2 + n
    return out


def format1(data, records):
    """The same records framed as format 1: [u32 length][u32 CRC-32][payload]."""
    out = bytearray()
    for r in records:
        payload = data[r.off + HEADER2:r.off + r.size]
        out += struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    return bytes(out)


def send_chats(port, key, n):
    """n chats over CLIENTS keep-alive connections; the request ids of the 200s."""
    ids, errors, lock = [], [], threading.Lock()
    body = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "x"}],
                       "mock_usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}

    def client(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(count):
                conn.request("POST", "/v1/chat/completions", body, headers)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    if resp.status == 200:
                        ids.append(resp.getheader("x-litellm-call-id"))
                    else:
                        errors.append(resp.status)
        except Exception as e:  # reported by the test, not lost in a thread
            with lock:
                errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n // CLIENTS + (i < n % CLIENTS),))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, errors


class SpoolDamageTest(harness.StackTestCase):
    stack_options = {"tollgate": {"proxyd": {"event_resend_ms": 1000}}}

    # ---------------------------------------------------------------- helpers

    def new_key(self, alias):
        status, _, body = self.stack.report("POST", "/key/generate", {"key_alias": alias},
                                            key=MASTER_KEY)
        self.assertEqual(status, 200, body)
        return body["key"], body["token"]

    def spool(self):
        return self.stack.dir / "spool"

    def spool_with_accountd_down(self, alias, n):
        """n answered requests whose events wait in the spool of a killed proxyd."""
        key, token = self.new_key(alias)
        self.stack.stop_one("accountd")
        t0 = time.monotonic()
        ids, errors = send_chats(self.stack.proxyd_port, key, n)
        print("\n%d requests spooled in %.1f s" % (n, time.monotonic() - t0), file=sys.stderr)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), n)
        self.stack.crash("proxyd")
        return token, set(ids)

    def ledger_ids(self, token):
        rows = self.stack.sql("SELECT request_id FROM spend_logs WHERE api_key = '%s'" % token)
        ids = [r[0] for r in rows]
        self.assertEqual(len(ids), len(set(ids)), "a request is in the ledger twice")
        return set(ids)

    def restart_and_deliver(self, token, expected):
        """accountd and proxyd again; waits until the ledger holds `expected`
        events of token, and a little more for any that should not come."""
        log = self.stack.daemon_log("proxyd")
        offset = log.stat().st_size
        self.stack.restart("accountd")
        self.stack.restart("proxyd")
        wait_for(lambda: len(self.ledger_ids(token)) >= len(expected), 60, interval=0.5,
                 message="the intact events did not all reach the ledger within 60 s")
        time.sleep(3)  # > event_resend_ms: a damaged event wrongly kept would be resent by now
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def metric(self, name):
        st, _, text = self.stack.proxy("GET", "/metrics")
        self.assertEqual(st, 200, text)
        m = re.search(r"^%s(?:\{\})? (\S+)$" % re.escape(name), text, re.M)
        self.assertIsNotNone(m, "%s not in /metrics" % name)
        return float(m.group(1))

    def damaged_files(self):
        d = self.spool() / "damaged"
        return sorted(d.glob("*.bin")) if d.is_dir() else []

    # ------------------------------------------------------------------ tests

    def test_1_damaged_segment_keeps_every_intact_event(self):
        token, answered = self.spool_with_accountd_down("damage", EVENTS)
        segs = [p for p in sorted(self.spool().glob("*.spool")) if p.stat().st_size > 0]
        self.assertEqual(len(segs), 1, "expected one segment: %s" % segs)
        path = segs[0]
        data = bytearray(path.read_bytes())
        recs = read_format2(bytes(data))
        events = [r for r in recs if r.kind == "E"]
        self.assertEqual({r.rid for r in events}, answered)
        self.assertEqual(len(events), EVENTS)

        def body_at(r):
            return r.off + HEADER2 + 3 + r.idlen + 20

        # (record index, byte offset in the file) per damage; neighbours form one range
        plan = {
            "magic": (100, lambda r: r.off + 1),
            "length": (1500, lambda r: r.off + 7),      # still a plausible length
            "length high byte": (2500, lambda r: r.off + 4),
            "crc": (3500, lambda r: r.off + 10),
            "event bytes": (5000, body_at),
            "request id": (6500, lambda r: r.off + HEADER2 + 3 + 5),
            "type": (7000, lambda r: r.off + HEADER2),
            "neighbours, first": (8000, body_at),
            "neighbours, second": (8001, lambda r: r.off + 2),
        }
        lost, ranges, damaged_bytes = set(), 0, 0
        for what, (i, where) in plan.items():
            r = events[i]
            data[where(r)] ^= 0x01
            lost.add(r.rid)
            damaged_bytes += r.size
            ranges += 0 if what == "neighbours, second" else 1
        self.assertEqual(recs.index(events[8001]), recs.index(events[8000]) + 1)
        last = recs[-1]  # torn: the crash came in the middle of its write
        self.assertEqual(last.kind, "E")
        del data[len(data) - 5:]
        lost.add(last.rid)
        damaged_bytes += last.size - 5
        ranges += 1
        path.write_bytes(bytes(data))

        log = self.restart_and_deliver(token, answered - lost)
        self.assertEqual(self.ledger_ids(token), answered - lost)

        m = re.search(r"spool: (\d+) unacknowledged events recovered for delivery in ([\d.]+) ms",
                      log)
        self.assertIsNotNone(m, log[-3000:])
        self.assertEqual(int(m.group(1)), EVENTS - len(lost))
        print("recovery of %d events with %d damaged ranges: %s ms"
              % (EVENTS, ranges, m.group(2)), file=sys.stderr)
        self.assertLess(float(m.group(2)), RECOVERY_MS_MAX)

        files = self.damaged_files()
        self.assertEqual(len(files), ranges, files)
        self.assertEqual(sum(f.stat().st_size for f in files), damaged_bytes)
        for f in files:
            self.assertEqual(stat.S_IMODE(f.stat().st_mode), 0o600, f)
            self.assertTrue(f.name.startswith(path.stem + "."), f)
        warnings = [ln for ln in log.splitlines() if "hold no valid record" in ln]
        self.assertEqual(len(warnings), ranges, "\n".join(warnings))
        for ln in warnings:
            self.assertFalse([rid for rid in lost if rid in ln], ln)
        self.assertEqual(self.metric("tollgate_proxyd_spool_damaged_ranges_total"), ranges)
        self.assertEqual(self.metric("tollgate_proxyd_spool_damaged_bytes_total"), damaged_bytes)

        # the damaged segment was rewritten without its damage (or, all acked, deleted)
        if path.exists():
            read_format2(path.read_bytes())

    def test_2_previous_format_is_read_up_to_its_damage(self):
        before = len(self.damaged_files())
        token, answered = self.spool_with_accountd_down("format-1", 300)
        mine = None
        for path in sorted(self.spool().glob("*.spool")):
            data = path.read_bytes()
            recs = read_format2(data)
            if any(r.rid in answered for r in recs):
                self.assertIsNone(mine, "the events are in two segments")
                mine = (path, data, recs)
        path, data, recs = mine
        events = [r for r in recs if r.kind == "E" and r.rid in answered]
        self.assertEqual(len(events), 300)
        old = bytearray(format1(data, recs))
        cut = events[200]  # its payload's event bytes, shifted by the shorter header
        at = sum(r.size - 4 for r in recs[:recs.index(cut)])
        old[at + 8 + 3 + cut.idlen + 10] ^= 0x01
        path.write_bytes(bytes(old))
        delivered = {r.rid for r in events[:200]}

        log = self.restart_and_deliver(token, delivered)
        self.assertEqual(self.ledger_ids(token), delivered)
        self.assertIn("of the previous format, which cannot resynchronise", log)
        files = self.damaged_files()
        self.assertEqual(len(files), before + 1)
        new = [f for f in files if f.name.startswith(path.stem + "." + str(at) + ".")]
        self.assertEqual(len(new), 1, files)
        self.assertEqual(new[0].read_bytes(), bytes(old[at:]))


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
