/*
 * fake_answer_extras.h - the fake upstream's verbatim answer extras.
 *
 * Two per-request body fields let a test make fake-upstream report any usage
 * object and any top-level answer member an upstream could send:
 *   mock_usage_raw {...}       copied verbatim as the answer's "usage"
 *   mock_answer_fields {...}   members set at the top level of the answer
 *                              and of every chunk of a stream
 * Both are absent by default, and then the answers do not change at all.
 * "Verbatim" is jansson's: members keep their order, integers are exact, and
 * a real is written as every real of fake-upstream, to 9 significant digits.
 */
#ifndef FAKE_ANSWER_EXTRAS_H
#define FAKE_ANSWER_EXTRAS_H

#include <stddef.h>

#include <jansson.h>

/* The extras of one answer; each member an owned reference, or NULL. */
struct answer_extras {
    json_t *usage_raw; /* mock_usage_raw */
    json_t *fields;    /* mock_answer_fields */
};

/* Fill `x` from the request `body` (borrowed); x holds references of its
 * own, to be dropped with answer_extras_clear.  On a bad field returns -1
 * with a message for a 400 in `msg` and leaves `x` empty. */
int answer_extras_read(const json_t *body, struct answer_extras *x, char *msg, size_t size);

/* Drop `x`'s references and empty it (an empty `x` is fine too). */
void answer_extras_clear(struct answer_extras *x);

/* Make `dst` hold references to what `src` holds. */
void answer_extras_copy(struct answer_extras *dst, const struct answer_extras *src);

/* The usage to report: mock_usage_raw if there is one (then `computed` is
 * dropped), else `computed`.  Takes over `computed` (may be NULL). */
json_t *answer_extras_usage(const struct answer_extras *x, json_t *computed);

/* Set mock_answer_fields' members on `obj`.  Takes over `obj` (may be NULL)
 * and returns it, or NULL (obj dropped) if jansson fails. */
json_t *answer_extras_add_fields(const struct answer_extras *x, json_t *obj);

/* A plain answer's extras: "usage" replaced or added if mock_usage_raw is
 * given, then mock_answer_fields' members.  Takes over `answer` (may be
 * NULL) and returns it, or NULL (answer dropped) if jansson fails. */
json_t *answer_extras_dress(const struct answer_extras *x, json_t *answer);

#endif
