/* curve.c - CURVE keys for proxyd's and accountd's ZeroMQ sockets (libzmq's
 * own CURVE, built on libsodium). Secret keys live in files of mode 0600;
 * public keys are Z85 text in the config. */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"

#define KEY_FILE_MAX 4096 /* a key file is one line and a comment */

/* Reads at most KEY_FILE_MAX - 1 bytes of an open file into buf. */
static int read_small(int fd, char *buf, char *err, size_t errlen, const char *path)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, KEY_FILE_MAX - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == KEY_FILE_MAX - 1) {
            snprintf(err, errlen, "%s: too big for a key file", path);
            return -1;
        }
    }
    buf[len] = '\0';
    return 0;
}

/* The first line of buf that is neither blank nor a comment, trimmed, in key. */
static int first_key_line(char *buf, char key[CURVE_Z85_LEN + 1])
{
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        line += strspn(line, " \t\r");
        size_t len = strcspn(line, " \t\r");
        if (len == 0 || line[0] == '#')
            continue;
        if (len != CURVE_Z85_LEN || line[len + strspn(line + len, " \t\r")] != '\0')
            return -1;
        memcpy(key, line, CURVE_Z85_LEN);
        key[CURVE_Z85_LEN] = '\0';
        return 0;
    }
    return -1;
}

int curve_read_secret(const char *path, struct curve_keypair *kp, char *err, size_t errlen)
{
    char buf[KEY_FILE_MAX];
    uint8_t raw[32];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (fstat(fd, &st) != 0)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(err, errlen, "%s: not a regular file", path);
    else if ((st.st_mode & 077) != 0)
        snprintf(err, errlen, "%s: a secret key must be readable by its owner only (mode %04o; "
                 "chmod 600 it)", path, (unsigned)(st.st_mode & 07777));
    else if (read_small(fd, buf, err, errlen, path) == 0)
        rc = 0;
    close(fd);
    if (rc < 0)
        return -1;
    if (first_key_line(buf, kp->secret_key) < 0 || zmq_z85_decode(raw, kp->secret_key) == NULL ||
        zmq_curve_public(kp->public_key, kp->secret_key) != 0) {
        explicit_bzero(buf, sizeof(buf));
        snprintf(err, errlen, "%s: holds no CURVE secret key (one line of 40 Z85 characters, as "
                 "accountd --curve-keygen writes)", path);
        return -1;
    }
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(raw, sizeof(raw));
    return 0;
}

/* Creates path (which must not exist) with mode and writes text to it. */
static int write_new(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    size_t len = strlen(text), off = 0;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int curve_keygen(const char *prefix, char public_key[CURVE_Z85_LEN + 1], char *err,
                 size_t errlen)
{
    struct curve_keypair kp;
    char path[4096], text[256];
    if (zmq_curve_keypair(kp.public_key, kp.secret_key) != 0) {
        snprintf(err, errlen, "cannot make a CURVE key pair: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s.key", prefix) >= sizeof(path)) {
        snprintf(err, errlen, "%s: path too long", prefix);
        return -1;
    }
    snprintf(text, sizeof(text), "# Tollgate CURVE secret key (accountd --curve-keygen): keep it "
             "mode 0600\n%s\n", kp.secret_key);
    int rc = write_new(path, 0600, text, err, errlen);
    explicit_bzero(text, sizeof(text));
    explicit_bzero(kp.secret_key, sizeof(kp.secret_key));
    if (rc < 0)
        return -1;
    snprintf(path, sizeof(path), "%s.pub", prefix);
    snprintf(text, sizeof(text), "%s\n", kp.public_key);
    if (write_new(path, 0644, text, err, errlen) < 0) {
        snprintf(path, sizeof(path), "%s.key", prefix);
        unlink(path); /* no half pair */
        return -1;
    }
    memcpy(public_key, kp.public_key, sizeof(kp.public_key));
    return 0;
}

/* libzmq's draft option (not in its stable header; Debian's library takes
 * it): with no ZAP handler answering, clients are refused, not admitted. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static int sockopt_failed(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "CURVE %s: %s", what, zmq_strerror(zmq_errno()));
    return -1;
}

int curve_set_server(void *sock, const struct curve_keypair *kp, char *err, size_t errlen)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->secret_key, CURVE_Z85_LEN) != 0)
        return sockopt_failed(err, errlen, "server key");
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, CURVE_ZAP_DOMAIN, strlen(CURVE_ZAP_DOMAIN)) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof(one)) != 0)
        return sockopt_failed(err, errlen, "ZAP domain");
    return 0;
}

int curve_bind(void *sock, const struct curve_keypair *kp, const char *endpoint, char *err,
               size_t errlen)
{
    if (kp != NULL && curve_set_server(sock, kp, err, errlen) < 0)
        return -1;
    if (zmq_bind(sock, endpoint) != 0) {
        snprintf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int curve_set_client(void *sock, const struct curve_keypair *kp, const char *server_public_key,
                     char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public_key, CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp->public_key, CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp->secret_key, CURVE_Z85_LEN) != 0)
        return sockopt_failed(err, errlen, "client keys");
    return 0;
}

int curve_connect_instance(void *sock, const struct config *cfg, char *const *endpoints,
                           size_t i, char *err, size_t errlen)
{
    const struct curve_config *c = &cfg->curve;
    struct curve_keypair kp;
    int rc = 0;
    if (!c->off) { /* read at each connect: a replaced key file takes effect */
        const char *server = c->n_server_public_keys == 1 ? c->server_public_keys[0]
                                                          : c->server_public_keys[i];
        rc = curve_read_secret(c->client_secret_file, &kp, err, errlen) == 0 &&
                     curve_set_client(sock, &kp, server, err, errlen) == 0
                 ? 0
                 : -1;
        explicit_bzero(&kp, sizeof(kp));
    }
    if (rc == 0 && zmq_connect(sock, endpoints[i]) != 0) {
        snprintf(err, errlen, "ZeroMQ to accountd at %s: %s", endpoints[i],
                 zmq_strerror(zmq_errno()));
        rc = -1;
    }
    return rc;
}
